"""The predictor process: KServe's ModelServer around `FraudModel`, on the host and port from settings.

Three adjustments to KServe's defaults, each for a stated reason:
- it binds 0.0.0.0 whatever it is told; locally we bind `FRAUD_PREDICTOR_HOST`
  (127.0.0.1) so a laptop does not expose the model to its network;
- its `/v2/health/ready` answers ready even with no model loaded; ours is ready
  only when every registered model is, so `fraud stack up` and Kubernetes can trust it;
- its repository `load` endpoint does nothing for a custom model; ours reloads
  the model (the production version) in a thread, without blocking requests.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys

import kserve.model_server
from kserve import ModelServer
import numpy as np
import orjson
from kserve import InferInput, InferRequest
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import RequestedOutput
from kserve.protocol.rest import server as rest_server
from kserve.protocol.rest import v2_datamodels
from kserve.utils.numpy_codec import to_np_dtype

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


class FraudDataPlane(DataPlane):
    """KServe's data plane, with readiness = every registered model is ready, and decode errors that say what to send."""

    async def ready(self) -> bool:
        models = self._model_registry.get_models().values()
        return bool(models) and all([await model.healthy() for model in models])

    def decode_inference_request(self, body, headers, model_name):
        """V2 binary tensors straight into numpy: KServe 0.21 turns them into Python lists element by element."""
        length = headers.get(INFERENCE_CONTENT_LENGTH_HEADER) if isinstance(body, bytes) else None
        if length is None:
            return super().decode_inference_request(body, headers, model_name)
        try:
            header = orjson.loads(body[: int(length)])
        except (ValueError, orjson.JSONDecodeError) as error:
            raise InvalidInput(f"the JSON part of the binary request is not valid: {error}") from error
        offset, inputs = int(length), []
        for spec in header.get("inputs", []):
            size = (spec.get("parameters") or {}).get("binary_data_size")
            dtype = to_np_dtype(spec.get("datatype", ""))
            if size is None or dtype is None or spec["datatype"] == "BYTES":
                return super().decode_inference_request(body, headers, model_name)  # mixed or string data: KServe's way
            array = np.frombuffer(body[offset: offset + size], dtype=dtype)
            offset += size
            if array.size != int(np.prod(spec["shape"])):
                raise InvalidInput(f"input {spec['name']!r}: {array.size} values do not fill shape {spec['shape']}")
            inputs.append(InferInput(spec["name"], spec["shape"], spec["datatype"], data=array.reshape(spec["shape"])))
        outputs = [RequestedOutput(name=o["name"], parameters=o.get("parameters")) for o in header.get("outputs", [])]
        return InferRequest(model_name=model_name, infer_inputs=inputs, request_id=header.get("id"),
                            parameters=header.get("parameters"), request_outputs=outputs or None)

    def decode(self, body, headers, *args, **kwargs):
        try:
            return super().decode(body, headers, *args, **kwargs)
        except InvalidInput as error:
            raise InvalidInput(f"{error}; send a JSON body with the header 'Content-Type: application/json'") from error


def _bind_to(host: str) -> None:
    """Make KServe's REST server listen on ``host`` instead of its hard-coded 0.0.0.0."""

    class HostRESTServer(rest_server.RESTServer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.config.host = host

    kserve.model_server.RESTServer = HostRESTServer


def _allow_tensor_parameters() -> None:
    """Let model metadata tensors carry `parameters` (our feature names); KServe's schema drops them."""
    v2_datamodels.MetadataTensor.model_config["extra"] = "allow"
    v2_datamodels.MetadataTensor.model_rebuild(force=True)
    v2_datamodels.ModelMetadataResponse.model_rebuild(force=True)


def build_server(settings: Settings, model) -> ModelServer:  # model: kserve.Model
    """A ModelServer serving ``model`` on settings' host and port, with the adjustments above."""
    _bind_to(settings.predictor_host)
    _allow_tensor_parameters()
    repository = ReloadingRepository()
    repository.update(model)
    server = ModelServer(http_port=settings.predictor_port, workers=1, enable_grpc=False, registered_models=repository,
                         enable_docs_url=False)
    server.dataplane = FraudDataPlane(model_registry=repository)
    return server


def main() -> None:
    """`python -m predictor`: serve the production model; not-ready (but up) until one exists.

    `python -m predictor --zero-model` serves a model that returns zeros: the benchmark's baseline.
    """
    settings = load_settings()
    if "--zero-model" in sys.argv:
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
