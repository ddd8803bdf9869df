"""The row batcher: concurrent requests share onnxruntime calls and each gets exactly its own scores."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from fraud.onnx_model import OnnxFraudModel
from predictor.model import LoadedModel, RowBatcher
from tests.predictor.conftest import F, tiny_model


class CountingModel(OnnxFraudModel):
    """A real ONNX model that counts how often onnxruntime is called."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls = 0

    def predict(self, rows: np.ndarray) -> np.ndarray:
        self.calls += 1
        return super().predict(rows)


def test_concurrent_requests_share_calls_and_get_their_own_rows(tmp_path: Path) -> None:
    v1 = LoadedModel(CountingModel(tiny_model(tmp_path / "v1.onnx", seed=1)), "1")
    v2 = LoadedModel(CountingModel(tiny_model(tmp_path / "v2.onnx", seed=2)), "2")
    requests = [(v1 if n % 3 else v2, np.random.default_rng(n).normal(0, 2, (1 + n % 4, F)).astype(np.float32))
                for n in range(30)]

    async def all_at_once() -> list[np.ndarray]:
        batcher = RowBatcher()
        return await asyncio.gather(*(batcher.score(model, rows) for model, rows in requests))

    results = asyncio.run(all_at_once())
    for (model, rows), scores in zip(requests, results, strict=True):
        assert np.allclose(scores, OnnxFraudModel.predict(model.onnx, rows), atol=1e-7)
    assert v1.onnx.calls == 1 and v2.onnx.calls == 1  # one call per version for the whole burst


def test_a_failing_call_fails_its_requests_without_hanging(tmp_path: Path) -> None:
    class Broken(OnnxFraudModel):
        def predict(self, rows: np.ndarray) -> np.ndarray:
            raise RuntimeError("onnxruntime fell over")

    broken = LoadedModel(Broken(tiny_model(tmp_path / "b.onnx", seed=1)), "1")

    async def two() -> list:
        batcher = RowBatcher()
        return await asyncio.gather(batcher.score(broken, np.zeros((1, F), np.float32)),
                                    batcher.score(broken, np.zeros((2, F), np.float32)), return_exceptions=True)

    outcomes = asyncio.run(asyncio.wait_for(two(), timeout=5))
    assert all(isinstance(o, RuntimeError) for o in outcomes)


def test_a_lone_request_is_not_delayed(tmp_path: Path) -> None:
    model = LoadedModel(CountingModel(tiny_model(tmp_path / "m.onnx", seed=4)), "1")
    rows = np.ones((1, F), np.float32)
    scores = asyncio.run(asyncio.wait_for(RowBatcher().score(model, rows), timeout=1))
    assert scores.shape == (1,) and model.onnx.calls == 1
