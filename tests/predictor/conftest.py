"""Predictor fixtures: tiny real ONNX models, a registry, a Feast online store, and a running predictor."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper

from fraud.features import FEATURE_NAMES
from fraud.onnx_model import OnnxFraudModel, write_metadata
from fraud.registry import EmbeddedRegistry
from fraud.settings import Settings
from fraud.storage import LocalArtifactStore
from tests.conftest import free_port

F = len(FEATURE_NAMES)
ROWS = np.random.default_rng(0).normal(0, 3, (50, F)).astype(np.float32)


def tiny_model(path: Path, seed: int) -> Path:
    """A real ONNX graph with the product's interface: features [N, 14] FP32 -> sigmoid(x·w + b) [N, 1]."""
    rng = np.random.default_rng(seed)
    weights = helper.make_tensor("w", TensorProto.FLOAT, [F, 1], rng.normal(0, 0.1, F).astype(np.float32))
    bias = helper.make_tensor("b", TensorProto.FLOAT, [1], [float(rng.normal())])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["z0"]), helper.make_node("Add", ["z0", "b"], ["z"]),
         helper.make_node("Sigmoid", ["z"], ["score"])],
        "tiny", [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, F])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])], initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    write_metadata(path, {"feature_names": list(FEATURE_NAMES), "threshold": 0.5})
    return path


def register(settings: Settings, seed: int) -> str:
    """Register and promote a tiny model; return its version."""
    registry = EmbeddedRegistry(settings.data_dir / "registry" / "registry.json")
    path = tiny_model(settings.data_dir / f"tiny-{seed}.onnx", seed)
    uri = LocalArtifactStore(settings.data_dir / "artifacts").put(path, f"tiny/{seed}/model.onnx")
    version = registry.register(settings.model_name, uri, "onnx", "17", {"feature_names": list(FEATURE_NAMES)})
    registry.promote(settings.model_name, version.version)
    return version.version


def direct(settings: Settings, version: int = 1) -> OnnxFraudModel:
    """Tiny model ``version`` run by onnxruntime in this process: what the predictor's answers must equal."""
    return OnnxFraudModel(settings.data_dir / f"tiny-{version}.onnx")


def push_users(settings: Settings, users: dict[str, list[float]]) -> None:
    """Put users' latest features into the Feast online store through the push source, as the worker will."""
    from feature_repo.definitions import PUSH_SOURCE, feast_objects
    from fraud.feature_store import open_store

    store = open_store(settings)
    store.apply(feast_objects(settings))
    now = datetime.now(UTC)
    frame = pd.DataFrame([{"user_id": user, "event_timestamp": now, "created_timestamp": now, "transaction_id": f"tx-{user}",
                           **dict(zip(FEATURE_NAMES, values, strict=True))} for user, values in users.items()])
    store.push(PUSH_SOURCE, frame)


class Predictor:
    """A predictor process for one test module."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.predictor_url
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")} | {
            "FRAUD_DATA_DIR": str(settings.data_dir), "FRAUD_PREDICTOR_PORT": str(settings.predictor_port),
            "FRAUD_PREDICTOR_MAX_ROWS": str(settings.predictor_max_rows)}
        self.log = (settings.data_dir / "predictor.log").open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "predictor"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v2/health/live", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError(f"predictor did not start: {(settings.data_dir / 'predictor.log').read_text()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Predictor, dict[str, list[float]]]]:
    """A predictor serving tiny model v1, with two users in the online store."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("predictor"), predictor_port=free_port(), predictor_max_rows=2000,
                        _env_file=None)
    register(settings, seed=1)
    users = {"user_0": [float(v) for v in np.linspace(1, 14, F)], "user_7": [float(v) for v in np.linspace(-1, 2, F)]}
    push_users(settings, users)
    predictor = Predictor(settings)
    yield settings, predictor, users
    predictor.stop()
