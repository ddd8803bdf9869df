"""Predictor fixtures: tiny real ONNX models, a registry, a Feast online store, and a running predictor."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import numpy as np
import pandas as pd
import pytest

from benchmarks.chaos_stack import register_tiny_model, tiny_model  # noqa: F401 - tiny_model: for the tests
from fraud.features import FEATURE_NAMES
from fraud.onnx_model import OnnxFraudModel
from fraud.settings import Settings
from tests.conftest import free_port

F = len(FEATURE_NAMES)
ROWS = np.random.default_rng(0).normal(0, 3, (50, F)).astype(np.float32)


def register(settings: Settings, seed: int) -> str:
    """Register and promote a tiny model; return its version."""
    return register_tiny_model(settings, seed)


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
    frame = pd.DataFrame([{"user_id": user, "event_timestamp": now, "transaction_id": f"tx-{user}",
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
