"""The worker's client of the KServe predictor: one V2 request per micro-batch, retried, never faked.

Requests use the V2 binary tensor extension both ways (a 1,000-row batch as JSON
costs more to encode than to score). A failed call is retried with bounded
exponential backoff; after `predictor_retries` failures the caller is told to
pause consumption (`on_pause`) and the call keeps retrying at the longest
backoff until the predictor answers. It never returns a made-up score.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx
import numpy as np
import orjson

from stream_scorer.batch import Prediction

log = logging.getLogger(__name__)


class PredictorError(Exception):
    """One failed predictor call. All are retried: a 5xx or a refused connection heals when the predictor
    is back; a 4xx or an odd answer means worker and model disagree, which a redeploy fixes. Either way,
    dropping the batch would lose events."""


class PredictorClient:
    """Score feature matrices with the predictor's V2 endpoint."""

    def __init__(self, base_url: str, model_name: str, timeout_s: float, retries: int, backoff_max_s: float,
                 backoff_first_s: float = 0.05, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = f"{base_url}/v2/models/{model_name}/infer"
        self.metadata_url = f"{base_url}/v2/models/{model_name}"
        self.retries, self.backoff_first_s, self.backoff_max_s = retries, backoff_first_s, backoff_max_s
        self._client = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def feature_names(self) -> list[str] | None:
        """The served model's input columns (from its V2 metadata), or None if it is not answering."""
        try:
            answer = await self._client.get(self.metadata_url)
            if answer.status_code != 200:
                return None
            return list(answer.json()["inputs"][0]["parameters"]["feature_names"])
        except (httpx.HTTPError, KeyError, IndexError, ValueError):
            return None

    async def predict_once(self, rows: np.ndarray) -> Prediction:
        """One V2 call; raises PredictorError."""
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        header = orjson.dumps({
            "inputs": [{"name": "features", "shape": list(rows.shape), "datatype": "FP32",
                        "parameters": {"binary_data_size": rows.nbytes}}],
            "outputs": [{"name": "score", "parameters": {"binary_data": True}}],
        })
        try:
            answer = await self._client.post(self.url, content=header + rows.tobytes(), headers={
                "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))})
        except httpx.HTTPError as error:
            raise PredictorError(f"{type(error).__name__}: {error or 'no answer'} ({self.url})") from error
        if answer.status_code != 200:
            raise PredictorError(f"HTTP {answer.status_code}: {answer.text[:300]}")
        return _parse(answer, len(rows))

    async def predict(self, rows: np.ndarray, on_retry: Callable[[PredictorError], None] = lambda error: None,
                      on_pause: Callable[[], None] = lambda: None, on_resume: Callable[[], None] = lambda: None,
                      ) -> Prediction:
        """Scores for ``rows``, however long the predictor takes to come back (see the module docstring)."""
        attempt, paused, delay = 0, False, self.backoff_first_s
        while True:
            try:
                prediction = await self.predict_once(rows)
            except PredictorError as error:
                attempt += 1
                on_retry(error)
                if attempt == self.retries + 1 and not paused:
                    paused = True
                    log.error("predictor failed %d times (%s): consumption paused until it answers", attempt, error)
                    on_pause()
                elif not paused or attempt % 20 == 0:
                    log.warning("predictor call failed (attempt %d, retrying in %.2fs): %s", attempt, delay, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max_s)
                continue
            if paused:
                log.warning("predictor answers again after %d failed attempts: consumption resumed", attempt)
                on_resume()
            return prediction

    async def aclose(self) -> None:
        await self._client.aclose()


def _parse(answer: httpx.Response, rows: int) -> Prediction:
    """Read a V2 response: binary (Inference-Header-Content-Length) or JSON."""
    body = answer.content
    header_length = answer.headers.get("inference-header-content-length")
    try:
        header = orjson.loads(body[: int(header_length)] if header_length else body)
        output = next(o for o in header["outputs"] if o["name"] == "score")
        if header_length:
            size = output["parameters"]["binary_data_size"]
            scores = np.frombuffer(body[int(header_length): int(header_length) + size], dtype=np.float32)
        else:
            scores = np.asarray(output["data"], dtype=np.float32)
        threshold = float((header.get("parameters") or {})["threshold"])
        version = str(header["model_version"])
    except (KeyError, StopIteration, ValueError, TypeError, orjson.JSONDecodeError) as error:
        raise PredictorError(f"unexpected V2 answer ({error!r}): {body[:200]!r}") from error
    if not 0.0 <= threshold <= 1.0:  # checked here once, so score events can be built without per-event checks
        raise PredictorError(f"the model's threshold {threshold} is not a probability")
    if scores.shape[0] != rows:
        raise PredictorError(f"asked for {rows} scores, got {scores.shape[0]}")
    return Prediction(scores.copy(), version, threshold)
