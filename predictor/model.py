"""The KServe model `fraud-detection`: the registered production ONNX model, served with onnxruntime.

`load()` resolves the version (pinned in settings, else production), fetches the
artifact through `fraud.storage`, scores a probe row with it (a model that
cannot is refused) and swaps it in atomically, so a reload never
fails a request in flight: each request scores with the model it started with.

Requests:
- V2 (Open Inference Protocol): one FP32 tensor [N, F], F = the model's features;
- V1 ``{"instances": [[...], ...]}``: the same rows as JSON;
- V1 ``{"user_id": "user_0"}``: that user's latest features from the Feast online store.
Anything else is a 4xx that says what is wrong; every answer carries the model version.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from fastapi import HTTPException
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput

from fraud.errors import FraudError
from fraud.onnx_model import OnnxFraudModel
from fraud.registry import open_registry
from fraud.settings import Settings
from fraud.storage import fetch

log = logging.getLogger(__name__)
OUTPUT_NAME = "score"


@dataclass(frozen=True)
class LoadedModel:
    """One loaded version: swapped in whole, never modified."""

    onnx: OnnxFraudModel
    version: str

    @property
    def feature_names(self) -> list[str]:
        return self.onnx.feature_names


class RowBatcher:
    """Score the rows of requests that reach the model in the same event-loop turn with one onnxruntime call.

    Each call into onnxruntime has a fixed cost; under concurrent load several
    requests are usually waiting at once, so they share one call. No timer: a
    batch closes when the loop gets to it, so a lone request waits for nothing.
    Requests only share a call with requests for the same loaded version.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[LoadedModel, np.ndarray, asyncio.Future]] = []

    async def score(self, model: LoadedModel, rows: np.ndarray) -> np.ndarray:
        """Scores of ``rows`` (float32 [N]) by ``model``."""
        future = asyncio.get_running_loop().create_future()
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append((model, rows, future))
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        groups: dict[int, list[tuple[LoadedModel, np.ndarray, asyncio.Future]]] = {}
        for item in pending:
            groups.setdefault(id(item[0]), []).append(item)
        for items in groups.values():
            try:
                scores = items[0][0].onnx.predict(items[0][1] if len(items) == 1 else np.concatenate([i[1] for i in items]))
            except Exception as error:  # every waiting request gets the error, none hangs
                for _, _, future in items:
                    if not future.done():
                        future.set_exception(error)
                continue
            offset = 0
            for _, rows, future in items:
                if not future.done():  # a client that went away has cancelled its future
                    future.set_result(scores[offset: offset + len(rows)])
                offset += len(rows)


def _probe(onnx: OnnxFraudModel, version: str) -> None:
    """Score a row of zeros with a model before it is swapped in: a model that cannot is refused, the previous one stays.

    Also pays the new session's first run (its allocations) here, off the request path.
    """
    width = len(onnx.feature_names)
    try:
        scores = onnx.predict(np.zeros((1, width), dtype=np.float32))
    except Exception as error:  # onnxruntime's own errors: a graph that does not take its declared features
        raise FraudError(f"version {version} cannot score a row of its {width} features: {error}") from error
    if scores.shape != (1,):
        raise FraudError(f"version {version} answers {scores.shape[0]} scores for one row")


class FraudModel(Model):
    """load / predict / ready, plus the request checks that keep client mistakes 4xx."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.model_name)
        self.settings = settings
        self.current: LoadedModel | None = None
        self._feature_store = None
        self._batcher = RowBatcher()

    # -- loading -----------------------------------------------------------------------------
    def load(self) -> bool:
        """Load the pinned or production version; stay not-ready (not crash) when there is none."""
        try:
            self.current = self._resolve_and_load()
        except FraudError as error:
            log.warning("model %s not loaded: %s", self.name, error)
            self.ready = self.current is not None  # a failed reload keeps serving the previous version
            return self.ready
        self.ready = True
        log.info("serving %s v%s (%d features)", self.name, self.current.version, len(self.current.feature_names))
        self._warm_up_feature_store()
        return True

    def _warm_up_feature_store(self) -> None:
        """Open Feast now: its first use costs seconds (imports, registry), which no request should pay."""
        if self._feature_store is not None:
            return
        try:
            self._online_features("user_warm_up", self.current.feature_names)
        except Exception as error:  # the store may not exist yet; user_id requests will then say so
            log.warning("Feast online store not usable yet: %s", error)

    def _resolve_and_load(self) -> LoadedModel:
        registry = open_registry(self.settings)
        if self.settings.model_version:
            chosen = next((v for v in registry.versions(self.name) if v.version == self.settings.model_version), None)
        else:
            chosen = registry.production(self.name)
        if chosen is None:
            wanted = f"version {self.settings.model_version}" if self.settings.model_version else "a production version"
            raise FraudError(f"the registry has no {wanted} of {self.name}; run `fraud pipeline run`")
        if self.current is not None and self.current.version == chosen.version:
            return self.current
        with tempfile.TemporaryDirectory() as scratch:
            onnx = OnnxFraudModel(fetch(self.settings, chosen.uri, Path(scratch) / "model.onnx"))
        _probe(onnx, chosen.version)
        return LoadedModel(onnx, chosen.version)

    def get_input_types(self) -> list[dict]:
        names = self.current.feature_names if self.current else []
        # `parameters` is not in KServe's metadata schema; predictor.server lets it through.
        return [{"name": "features", "datatype": "FP32", "shape": [-1, len(names)], "parameters": {"feature_names": names}}]

    def get_output_types(self) -> list[dict]:
        return [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, 1]}]

    # -- prediction ----------------------------------------------------------------------------
    async def predict(self, payload: InferRequest | dict | bytes, headers: dict[str, str] | None = None) -> Any:
        model = self.current
        if model is None:
            raise HTTPException(status_code=503, detail=f"model {self.name} is not loaded yet")
        if isinstance(payload, InferRequest):
            return await self._predict_v2(model, payload)
        if isinstance(payload, (bytes, bytearray, str)):
            payload = _json_without_content_type(payload)
        if not isinstance(payload, dict):
            raise InvalidInput('expected a JSON object: {"instances": [[...], ...]} or {"user_id": "user_0"}')
        if "user_id" in payload:
            return await self._predict_user(model, payload)
        if "instances" in payload:
            rows = self._rows(model, payload["instances"], "instances")
            return {"predictions": model.onnx.predict(rows).reshape(-1, 1).tolist(), "model_version": model.version}
        raise InvalidInput('expected {"instances": [[...], ...]} or {"user_id": "user_0"}, got keys '
                           f"{sorted(payload)[:5]}")

    async def explain(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """No explainer is deployed with this model: asking for one is a 404 that says so, not KServe's 501."""
        raise HTTPException(status_code=404, detail=f"model {self.name} has no explainer; "
                                                    f"POST /v1/models/{self.name}:predict for its scores")

    async def _predict_v2(self, model: LoadedModel, request: InferRequest) -> InferResponse:
        if len(request.inputs) != 1:
            raise InvalidInput(f"expected one input tensor 'features', got {len(request.inputs)}")
        tensor = request.inputs[0]
        if tensor.datatype != "FP32":
            raise InvalidInput(f"input {tensor.name!r} must be FP32, got {tensor.datatype}")
        expected = len(model.feature_names)
        if len(tensor.shape) != 2 or tensor.shape[1] != expected:
            raise InvalidInput(f"input shape must be [N, {expected}], got {list(tensor.shape)}")
        try:
            rows = tensor.as_numpy()
        except (ValueError, TypeError, OverflowError) as error:  # data that does not fit the declared shape, or not numbers
            raise InvalidInput(f"input data does not fit shape {list(tensor.shape)}: {error}") from error
        self._check_rows(rows)
        scores = (await self._batcher.score(model, rows)).reshape(-1, 1)
        output = InferOutput(name=OUTPUT_NAME, shape=[len(scores), 1], datatype="FP32", data=scores)
        # Honour requested outputs and `binary_data_output`, so a client can ask for the scores as a binary tensor
        # (tritonclient asks with `binary_data_output` when it names no outputs).
        return InferResponse(response_id=request.id or _next_response_id(), model_name=self.name, infer_outputs=[output],
                             model_version=model.version, parameters={"threshold": model.onnx.threshold},
                             requested_outputs=request.request_outputs, use_binary_outputs=request.use_binary_outputs)

    async def _predict_user(self, model: LoadedModel, payload: dict) -> dict:
        user_id = payload["user_id"]
        if not isinstance(user_id, str) or not user_id:
            raise InvalidInput('"user_id" must be a non-empty string such as "user_0"')
        try:
            features = await asyncio.to_thread(self._online_features, user_id, model.feature_names)
        except Exception as error:  # no feature store yet: the server's problem, not the client's
            raise HTTPException(status_code=503, detail=f"the feature store cannot be read: {error}") from error
        if features is None:
            raise HTTPException(status_code=404, detail=f"unknown user {user_id!r}: the feature store has no features for it")
        rows = np.asarray([features], dtype=np.float32)
        return {"user_id": user_id, "prediction": model.onnx.predict(rows).reshape(-1, 1).tolist(),
                "model_version": model.version}

    def _online_features(self, user_id: str, names: list[str]) -> list[float] | None:
        """The user's latest features from Feast's online store (None if it has none)."""
        from fraud.feature_store import open_store

        if self._feature_store is None:
            self._feature_store = open_store(self.settings)
        values = self._feature_store.get_online_features(
            features=[f"user_activity:{name}" for name in names], entity_rows=[{"user_id": user_id}]
        ).to_dict()
        row = [values[name][0] for name in names]
        return None if any(value is None for value in row) else [float(value) for value in row]

    def _rows(self, model: LoadedModel, instances: Any, field: str) -> np.ndarray:
        expected = len(model.feature_names)
        if not isinstance(instances, list) or not instances:
            raise InvalidInput(f'"{field}" must be a non-empty list of rows of {expected} numbers')
        if len(instances) > self.settings.predictor_max_rows:
            raise InvalidInput(f"{len(instances)} rows is more than the limit of {self.settings.predictor_max_rows} per request")
        if not all(isinstance(row, list) and len(row) == expected for row in instances):
            raise InvalidInput(f'every row of "{field}" must be a list of {expected} numbers ({", ".join(model.feature_names)})')
        try:
            rows = np.asarray(instances, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise InvalidInput(f'"{field}" must hold numbers only: {error}') from error
        self._check_rows(rows)
        return rows

    def _check_rows(self, rows: np.ndarray) -> None:
        if not 0 < rows.shape[0] <= self.settings.predictor_max_rows:
            raise InvalidInput(f"{rows.shape[0]} rows: a request carries 1 to {self.settings.predictor_max_rows} rows")
        # A single row is checked faster in Python than through numpy's ufunc machinery.
        finite = all(map(math.isfinite, rows.ravel().tolist())) if rows.size <= 64 else bool(np.isfinite(rows).all())
        if not finite:
            bad = np.argwhere(~np.isfinite(rows))[0]
            raise InvalidInput(f"row {bad[0]} column {bad[1]} is {rows[bad[0], bad[1]]}: features must be finite numbers")


class ZeroModel(Model):
    """The benchmark's baseline: the same server, a model that returns zeros without computing anything."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ready = True

    async def predict(self, payload: InferRequest | dict, headers: dict[str, str] | None = None) -> Any:
        if isinstance(payload, InferRequest):
            rows = payload.inputs[0].shape[0]
            output = InferOutput(name=OUTPUT_NAME, shape=[rows, 1], datatype="FP32", data=np.zeros((rows, 1), np.float32))
            return InferResponse(response_id=payload.id or _next_response_id(), model_name=self.name, infer_outputs=[output],
                                 model_version="0", requested_outputs=payload.request_outputs,
                                 use_binary_outputs=payload.use_binary_outputs)
        return {"predictions": [[0.0]] * len(payload.get("instances", [[]])), "model_version": "0"}


_PROCESS_ID = uuid.uuid4().hex[:12]
_response_numbers = itertools.count(1)


def _next_response_id() -> str:
    """A unique response id without a uuid4 per request: this process's id and a counter."""
    return f"{_PROCESS_ID}-{next(_response_numbers)}"


def _json_without_content_type(body: bytes | bytearray | str) -> Any:
    """KServe hands over the raw body when the content type is not JSON: parse it, or say which header is missing."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"the body is not JSON ({error}); send JSON with the header 'Content-Type: application/json'") from error
