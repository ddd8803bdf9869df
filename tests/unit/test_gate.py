"""The gate's rules, on tiny hand-built ONNX models: the worker's features, the tuned baseline, production."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from fraud.features import FEATURE_NAMES
from fraud.onnx_model import write_metadata
from fraud.registry import EmbeddedRegistry
from fraud.settings import Settings
from fraud.storage import LocalArtifactStore
from training_pipeline.register import baseline_verdict, feature_difference, gate_and_register

WORKER = list(FEATURE_NAMES)


def logistic_model(path: Path, weights: np.ndarray, metadata: dict) -> Path:
    """sigmoid(features @ weights): a real ONNX graph of the served shape, [N, 14] -> [N, 1]."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["logit"]), helper.make_node("Sigmoid", ["logit"], ["score"])],
        "logistic", [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, len(WORKER)])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(weights.astype(np.float32).reshape(-1, 1), "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    write_metadata(path, {"feature_names": WORKER} | metadata)
    return path


@pytest.fixture
def test_split() -> pd.DataFrame:
    """Fraud is told by `amount` alone (noisily): weight on amount ranks well, weight on anything else does not."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(2000, len(WORKER))), columns=WORKER)
    frame["fraud"] = (frame["amount"] + rng.normal(scale=0.5, size=len(frame)) > 2.0).astype(int)
    return frame


def weights(feature: str) -> np.ndarray:
    return np.eye(len(WORKER))[WORKER.index(feature)] * 3.0


def test_same_features_pass() -> None:
    assert feature_difference(WORKER, WORKER) is None


def test_missing_and_extra_features_are_named() -> None:
    served = [name for name in WORKER if name != "online_order"] + ["merchant_risk"]
    reason = feature_difference(served, WORKER)
    assert reason is not None and "missing ['online_order']" in reason and "extra ['merchant_risk']" in reason


def test_another_order_names_the_first_column_that_differs() -> None:
    served = [WORKER[1], WORKER[0], *WORKER[2:]]
    reason = feature_difference(served, WORKER)
    assert reason is not None and "another order: column 0 is 'distance_from_home', the worker's is 'amount'" in reason


def test_baseline_rule_at_the_margin() -> None:
    assert baseline_verdict({"pr_auc": 0.98, "baseline_pr_auc": 1.0}) is None
    assert baseline_verdict({}) is None  # no figures from evaluate: nothing to judge by
    reason = baseline_verdict({"pr_auc": 0.90, "baseline_pr_auc": 0.95})
    assert reason is not None and "0.9000 is 0.947x the baseline's 0.9500, below 0.98x" in reason


def test_the_gate_refuses_other_features_and_registers_nothing(tmp_path: Path, test_split: pd.DataFrame) -> None:
    settings = Settings(data_dir=tmp_path, _env_file=None)
    registry, store = EmbeddedRegistry(tmp_path / "registry.json"), LocalArtifactStore(tmp_path / "artifacts")
    candidate = logistic_model(tmp_path / "c.onnx", weights("amount"), {})
    write_metadata(candidate, {"feature_names": list(reversed(WORKER))})
    decision = gate_and_register(candidate, test_split, settings, registry, store)
    assert not decision.promoted and "other features than the stream worker computes" in decision.reason
    assert registry.versions(settings.model_name) == []


def test_the_gate_judges_baseline_then_production(tmp_path: Path, test_split: pd.DataFrame) -> None:
    settings = Settings(data_dir=tmp_path, _env_file=None)
    registry, store = EmbeddedRegistry(tmp_path / "registry.json"), LocalArtifactStore(tmp_path / "artifacts")
    weak = {"metrics": {"pr_auc": 0.50, "baseline_pr_auc": 0.60}}
    first = gate_and_register(logistic_model(tmp_path / "1.onnx", weights("used_chip"), weak), test_split, settings, registry, store)
    assert first.promoted and "first model" in first.reason and "baseline wins" in first.reason  # something must serve

    strong_but_weaker_than_gbdt = logistic_model(tmp_path / "2.onnx", weights("amount"), weak)
    refused = gate_and_register(strong_but_weaker_than_gbdt, test_split, settings, registry, store)
    assert not refused.promoted and refused.candidate_pr_auc > refused.production_pr_auc  # it would beat production...
    assert refused.reason.startswith("kept production v1: the tuned HistGradientBoosting baseline wins")  # ...rule 2 says no

    good = {"metrics": {"pr_auc": 0.99, "baseline_pr_auc": 1.0}}
    promoted = gate_and_register(logistic_model(tmp_path / "3.onnx", weights("amount"), good), test_split, settings, registry, store)
    assert promoted.promoted and "beats production v1" in promoted.reason and "0.990x the tuned baseline" in promoted.reason
    same = gate_and_register(logistic_model(tmp_path / "4.onnx", weights("amount"), good), test_split, settings, registry, store)
    assert not same.promoted and "does not beat" in same.reason
    assert registry.production(settings.model_name).version == "2"
