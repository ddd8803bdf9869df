"""The predictor process: KServe's ModelServer around `FraudModel`, on the host and port from settings.

Adjustments to KServe's defaults, each for a stated reason:
- it binds 0.0.0.0 whatever it is told; locally we bind `FRAUD_PREDICTOR_HOST`
  (127.0.0.1) so a laptop does not expose the model to its network;
- its `/v2/health/ready` answers ready even with no model loaded; ours is ready
  only when every registered model is, so `fraud stack up` and Kubernetes can trust it;
- its repository `load` endpoint does nothing for a custom model; ours reloads
  the model (the production version) in a thread, without blocking requests;
- it treats a V2 body without a JSON Content-Type as binary tensors and refuses it when the
  binary header is missing; tritonclient's JSON mode and `curl -d` send exactly that, so we
  read such a body as V2 JSON;
- it answers some client mistakes with a 5xx (a model version, loading an unknown model, a body
  that fails validation and holds NaN); ours answers them with a 4xx that says what is wrong.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging

import kserve.model_server
import numpy as np
from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve import InferInput, InferRequest, ModelServer
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput, ModelNotFound
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import RequestedOutput
from kserve.protocol.rest import server as rest_server
from kserve.protocol.rest import v2_datamodels, v2_endpoints
from kserve.protocol.rest.v2_datamodels import (InferenceRequest, InferenceResponse, ModelMetadataResponse,
                                                ModelReadyResponse, Parameters)
from kserve.utils.numpy_codec import to_np_dtype
from pydantic import BaseModel, ValidationError

from fraud.settings import Settings, load_settings
from predictor.model import FraudModel, ZeroModel

log = logging.getLogger(__name__)


class ReloadingRepository(ModelRepository):
    """`POST /v2/repository/models/<name>/load` reloads that model: new version in, old one out, no failed request."""

    async def load(self, name: str) -> bool:
        model = self.get_model(name)
        if model is None:
            raise KeyError(f"model {name} is not served here")
        return await asyncio.to_thread(model.load)


class BinaryTensor(BaseModel):
    """One input of a binary V2 request's JSON part; its data follows the JSON."""

    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None


class BinaryOutput(BaseModel):
    """One output a binary V2 request asks for."""

    name: str
    parameters: Parameters | None = None


class BinaryHeader(BaseModel):
    """The JSON part of a binary V2 request, checked before use so a malformed one is a 400, not a 500."""

    id: str | None = None
    parameters: Parameters | None = None
    inputs: list[BinaryTensor] = []
    outputs: list[BinaryOutput] | None = None


class FraudDataPlane(DataPlane):
    """KServe's data plane, with readiness = every registered model is ready, and decode errors that say what to send."""

    async def ready(self) -> bool:
        models = self._model_registry.get_models().values()
        return bool(models) and all([await model.healthy() for model in models])

    def decode_inference_request(self, body: bytes | InferenceRequest, headers: dict[str, str],
                                 model_name: str) -> InferRequest:
        """V2 binary tensors straight into numpy; a V2 JSON body read as JSON whatever its Content-Type."""
        if not isinstance(body, bytes):
            return super().decode_inference_request(body, headers, model_name)
        length = headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
        if length is None:  # tritonclient's JSON mode, `curl -d`: JSON without a JSON Content-Type
            return super().decode_inference_request(_json_inference_request(body), headers, model_name)
        try:
            return self._decode_binary(body, _json_length(length, body), headers, model_name)
        except (KeyError, TypeError, ValueError, OverflowError) as error:  # data that does not fit its header: the client's
            raise InvalidInput(f"the binary data does not match the request's JSON part: {error}") from error

    def _decode_binary(self, body: bytes, length: int, headers: dict, model_name: str) -> InferRequest:
        """KServe 0.21 turns binary tensors into Python lists element by element; this reads them with numpy."""
        try:
            header = BinaryHeader.model_validate_json(body[:length])
        except ValidationError as error:
            raise InvalidInput(f"the JSON part of the binary request is not valid: {error}") from error
        offset, inputs = length, []
        for spec in header.inputs:
            size = (spec.parameters or {}).get("binary_data_size")
            dtype = to_np_dtype(spec.datatype)
            if not isinstance(size, int) or dtype is None or spec.datatype == "BYTES":
                return super().decode_inference_request(body, headers, model_name)  # mixed or string data: KServe's way
            array = np.frombuffer(body[offset: offset + size], dtype=dtype)
            offset += size
            if array.size != int(np.prod(spec.shape)):
                raise InvalidInput(f"input {spec.name!r}: {array.size} values do not fill shape {spec.shape}")
            inputs.append(InferInput(spec.name, spec.shape, spec.datatype, data=array.reshape(spec.shape)))
        outputs = [RequestedOutput(name=o.name, parameters=o.parameters) for o in header.outputs or []]
        return InferRequest(model_name=model_name, infer_inputs=inputs, request_id=header.id,
                            parameters=header.parameters, request_outputs=outputs or None)

    def decode(self, body, headers, *args, **kwargs):
        try:
            return super().decode(body, headers, *args, **kwargs)
        except InvalidInput as error:
            raise InvalidInput(f"{error}; send a JSON body with the header 'Content-Type: application/json'") from error


def _json_length(value: str, body: bytes) -> int:
    """The value of the binary request's length header, refused unless it is a length within the body."""
    if not (value.isascii() and value.isdigit()) or int(value) > len(body):
        raise InvalidInput(f"the header '{INFERENCE_CONTENT_LENGTH_HEADER}' must be the length of the JSON part "
                           f"(0 to {len(body)} bytes), got {value!r}")
    return int(value)


def _json_inference_request(body: bytes) -> InferenceRequest:
    """A V2 JSON body that came without a JSON Content-Type, read and checked as FastAPI reads one that came with it."""
    try:
        document = json.loads(body)  # FastAPI's parser: it takes NaN, which the finiteness check then names
    except ValueError as error:  # not JSON, or not UTF-8
        raise InvalidInput(f"the body is neither V2 JSON ({error}) nor binary tensors, which need the header "
                           f"'{INFERENCE_CONTENT_LENGTH_HEADER}'") from error
    try:
        return InferenceRequest.model_validate(document)
    except ValidationError as error:  # the same 422 and detail as this body sent with 'Content-Type: application/json'
        problems = error.errors(include_url=False)
        raise RequestValidationError([{**problem, "loc": ("body", *problem["loc"])} for problem in problems]) from error


class VersionNotServed(ModelNotFound):
    """A request for a version other than the one served: a 404 that names the one served."""

    def __init__(self, model_name: str, asked: str, served: str | None) -> None:
        super().__init__(model_name)
        self.reason = f"model {model_name} version {asked} is not served here; it serves version {served or 'none yet'}"


class FraudV2Endpoints(v2_endpoints.V2Endpoints):
    """KServe's V2 endpoints, with client mistakes answered 4xx where KServe 0.21 answers 5xx.

    KServe answers 501 to any request that names a model version; we serve one version at a time,
    so a request for that one is served and a request for any other is a 404. Loading a model that
    is not served here is a 404, where KServe says 503 (not ready).
    """

    async def model_metadata(self, model_name: str, model_version: str | None = None) -> ModelMetadataResponse:
        self._check_version(model_name, model_version)
        return await super().model_metadata(model_name)

    async def model_ready(self, model_name: str, model_version: str | None = None) -> ModelReadyResponse:
        self._check_version(model_name, model_version)
        return await super().model_ready(model_name)

    async def infer(self, raw_request: Request, raw_response: Response, model_name: str,
                    request_body: InferenceRequest | bytes,
                    model_version: str | None = None) -> InferenceResponse | Response:
        self._check_version(model_name, model_version)
        return await super().infer(raw_request, raw_response, model_name, request_body)

    async def load(self, model_name: str) -> dict:
        self.dataplane.get_model_from_registry(model_name)  # ModelNotFound (404) for a model not served here
        return await super().load(model_name)

    def _check_version(self, model_name: str, model_version: str | None) -> None:
        if not model_version:  # no version, or an empty one, which KServe ignores too
            return
        current = getattr(self.dataplane.get_model_from_registry(model_name), "current", None)
        served = current.version if current is not None else None
        if model_version != served:
            raise VersionNotServed(model_name, model_version, served)


def _use_rest_server(host: str) -> None:
    """Make KServe build our REST server: listening on ``host``, not its hard-coded 0.0.0.0, with 422s that render."""

    class FraudRESTServer(rest_server.RESTServer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.config.host = host

        def _add_exception_handlers(self, app: FastAPI) -> None:
            super()._add_exception_handlers(app)
            app.add_exception_handler(RequestValidationError, _unprocessable)

    kserve.model_server.RESTServer = FraudRESTServer


async def _unprocessable(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422; without the echoed input when that holds NaN or infinity, which FastAPI fails to render (a 500)."""
    detail = jsonable_encoder(error.errors())
    try:
        return JSONResponse(status_code=422, content={"detail": detail})
    except ValueError:  # strict JSON has no NaN or infinity
        return JSONResponse(status_code=422, content={"detail": [{k: v for k, v in problem.items() if k != "input"}
                                                                 for problem in detail]})


def _allow_tensor_parameters() -> None:
    """Let model metadata tensors carry `parameters` (our feature names); KServe's schema drops them."""
    v2_datamodels.MetadataTensor.model_config["extra"] = "allow"
    v2_datamodels.MetadataTensor.model_rebuild(force=True)
    v2_datamodels.ModelMetadataResponse.model_rebuild(force=True)


def build_server(settings: Settings, model) -> ModelServer:  # model: kserve.Model
    """A ModelServer serving ``model`` on settings' host and port, with the adjustments above."""
    _use_rest_server(settings.predictor_host)
    _allow_tensor_parameters()
    v2_endpoints.V2Endpoints = FraudV2Endpoints  # register_v2_endpoints builds its endpoints from this name
    repository = ReloadingRepository()
    repository.update(model)
    server = ModelServer(http_port=settings.predictor_port, workers=1, enable_grpc=False, registered_models=repository,
                         enable_docs_url=False)
    server.dataplane = FraudDataPlane(model_registry=repository)
    return server


def _arguments():  # -> argparse.Namespace
    import argparse

    parser = argparse.ArgumentParser(prog="python -m predictor", description=(
        "Serve the registered production fraud model (KServe V1/V2 REST on FRAUD_PREDICTOR_HOST:FRAUD_PREDICTOR_PORT); "
        "settings come from FRAUD_* environment variables."))
    parser.add_argument("--zero-model", action="store_true", help="serve a model that returns zeros (a benchmark's baseline)")
    return parser.parse_args()


def main() -> None:
    """`python -m predictor`: serve the production model; not-ready (but up) until one exists.

    `python -m predictor --zero-model` serves a model that returns zeros: the benchmark's baseline.
    """
    options = _arguments()
    settings = load_settings()
    if options.zero_model:
        model = ZeroModel(settings.model_name)
    else:
        model = FraudModel(settings)
        model.load()
    server = build_server(settings, model)
    # Feast, pandas and onnxruntime leave millions of long-lived objects; freezing them keeps the
    # garbage collector from walking them again and again while serving (measured: `fraud bench predictor`).
    gc.freeze()
    # Models are registered above, ready or not, so start() gets none to check: KServe would refuse to start otherwise.
    server.start([])


if __name__ == "__main__":
    main()
