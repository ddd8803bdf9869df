"""The worker's client of the KServe predictor: one V2 request per micro-batch, never a made-up score.

Requests use the V2 binary tensor extension both ways (a 1,000-row batch as JSON
costs more to encode than to score). Two kinds of failure, told apart here:
- no usable answer (connection refused, timeout, 5xx, a malformed answer): the
  predictor is down or sick, a `TransientFault`; the caller retries with backoff
  (`stream_scorer.backpressure`);
- a 4xx: the predictor is up and refuses some rows. The batch is bisected until
  the refused rows are found, and `RowsRefused` names them with the predictor's
  message, so that only they are dead-lettered. A batch of 500 with one bad row
  costs about 2·log2(500) ≈ 18 extra calls, paid only when a row is refused.
"""

from __future__ import annotations

import httpx
import numpy as np
import orjson

from stream_scorer.batch import Prediction
from stream_scorer.faults import RowsRefused, TransientFault


class _Refused(Exception):
    """One request answered 4xx; ``message`` is the predictor's."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PredictorClient:
    """Score feature matrices with the predictor's V2 endpoint."""

    def __init__(self, base_url: str, model_name: str, timeout_s: float,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = f"{base_url}/v2/models/{model_name}/infer"
        self.metadata_url = f"{base_url}/v2/models/{model_name}"
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

    async def predict(self, rows: np.ndarray) -> Prediction:
        """Scores for every row; raises RowsRefused (which rows, why) or TransientFault (no usable answer)."""
        try:
            return await self._call(rows)
        except _Refused as refusal:
            refused, parts = await self._bisect(rows, 0, refusal.message)
        if refused:
            raise RowsRefused(refused)
        # Every half passed alone: the request as a whole was refused (e.g. more rows than allowed).
        if len({(part.model_version, part.threshold) for part in parts}) != 1:
            raise TransientFault("predictor", "the model changed while a batch was scored in parts")
        return Prediction(np.concatenate([part.scores for part in parts]), parts[0].model_version, parts[0].threshold)

    async def _bisect(self, rows: np.ndarray, first: int, message: str) -> tuple[dict[int, str], list[Prediction]]:
        """Split a refused request: the rows refused alone (by index, from ``first``), and the parts' answers in order."""
        if len(rows) == 1:
            return {first: message}, []
        refused: dict[int, str] = {}
        parts: list[Prediction] = []
        middle = len(rows) // 2
        for start, part in ((0, rows[:middle]), (middle, rows[middle:])):
            try:
                parts.append(await self._call(part))
            except _Refused as refusal:
                more, answered = await self._bisect(part, first + start, refusal.message)
                refused |= more
                parts += answered
        return refused, parts

    async def _call(self, rows: np.ndarray) -> Prediction:
        """One V2 call; raises _Refused on a 4xx, TransientFault when there is no usable answer."""
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
            raise TransientFault("predictor", f"{type(error).__name__}: {error or 'no answer'} ({self.url})") from error
        if 400 <= answer.status_code < 500 and answer.status_code not in (404, 408, 429):
            raise _Refused(f"HTTP {answer.status_code}: {_message(answer)}")
        if answer.status_code != 200:  # 5xx, and 404/408/429: a predictor without the model, busy or slow
            raise TransientFault("predictor", f"HTTP {answer.status_code}: {_message(answer)}")
        return _parse(answer, len(rows))

    async def aclose(self) -> None:
        await self._client.aclose()


def _message(answer: httpx.Response) -> str:
    """The predictor's error message: KServe answers {"error": "..."}; anything else, its first 300 characters."""
    try:
        return str(answer.json()["error"])[:300]
    except (ValueError, KeyError, TypeError):
        return answer.text[:300]


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
        raise TransientFault("predictor", f"unexpected V2 answer ({error!r}): {body[:200]!r}") from error
    # Checked here once, so score events can be built without per-event checks. An answer like this
    # is a sick predictor, not a bad row: retried until a healthy one answers.
    if not 0.0 <= threshold <= 1.0:
        raise TransientFault("predictor", f"the model's threshold {threshold} is not a probability")
    if scores.shape[0] != rows:
        raise TransientFault("predictor", f"asked for {rows} scores, got {scores.shape[0]}")
    return Prediction(scores.copy(), version, threshold)
