"""The training pipeline end to end: a real kfp.local run, twice, then the gate on real ONNX models."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pandas as pd
import pytest

from fraud.drift import REFERENCE_KEY, SCORE, Reference
from fraud.features import FEATURE_NAMES
from fraud.onnx_model import OnnxFraudModel
from fraud.registry import EmbeddedRegistry
from fraud.settings import Settings
from fraud.storage import LocalArtifactStore
from training_pipeline.pipeline import COMPILED, compile_pipeline
from training_pipeline.register import gate_and_register
from tests.conftest import free_port
from training_pipeline.train import build_model, export_onnx


def fraud(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")} | {
        "FRAUD_DATA_DIR": str(data_dir), "FRAUD_PREDICTOR_PORT": str(free_port())}  # never reach a developer's predictor
    return subprocess.run([sys.executable, "-m", "fraud.cli", *args], capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    data_dir = tmp_path_factory.mktemp("pipeline") / "data"  # clean: no data, no registry
    return data_dir, fraud(data_dir, "pipeline", "run", "--users", "2000")


def test_compiled_yaml_is_up_to_date(tmp_path: Path) -> None:
    fresh = compile_pipeline(Settings(_env_file=None).pipeline_image, tmp_path / "pipeline.yaml")
    assert fresh.read_text() == COMPILED.read_text(), "run `fraud pipeline compile` and commit the YAML"


def test_a_clean_run_trains_registers_v1_as_production_and_reports(first_run) -> None:
    data_dir, run = first_run
    assert run.returncode == 0, run.stderr[-3000:]
    assert re.search(r"promoted v1 \((MLP|tuned HistGradientBoosting)\): first model", run.stdout), run.stdout[-2000:]
    assert "deployed fraud-detection v1" in run.stdout
    for step in ("prep", "features", "training_data", "train", "evaluate", "register", "deploy"):
        assert f"{step} " in run.stdout.split("step timings:")[1]

    for split in ("train", "valid", "test"):
        frame = pd.read_parquet(data_dir / "training" / f"{split}.parquet")
        assert list(frame.columns) == [*FEATURE_NAMES, "fraud"] and len(frame) > 1000

    listing = json.loads(fraud(data_dir, "models", "list", "--json").stdout)
    assert [(v["version"], v["production"]) for v in listing] == [("1", True)]
    model_path = Path(listing[0]["uri"].removeprefix("file://"))
    assert [i.name for i in onnx.load(str(model_path)).graph.input] == ["features"]
    model = OnnxFraudModel(model_path)
    described = model.describe()
    assert described["feature_names"] == list(FEATURE_NAMES)
    assert 0 < described["threshold"] < 1
    assert {"pr_auc", "roc_auc", "precision", "recall", "baseline_pr_auc", "model_to_baseline"} <= set(described["metrics"])
    metrics = described["metrics"]
    assert abs(metrics["model_to_baseline"] - metrics["pr_auc"] / metrics["baseline_pr_auc"]) < 1e-9
    assert described["train_window"]["start"] < described["train_window"]["end"]
    assert described["metrics"]["pr_auc"] > 0.3  # far above the ~1% base rate: it learned something
    # The candidate is the better of the MLP and the tuned baseline (exported with skl2onnx when it wins by the margin).
    if described["candidate_kind"] == "hgb":
        assert metrics["mlp_pr_auc"] < 0.98 * metrics["baseline_pr_auc"]
        assert abs(metrics["pr_auc"] - metrics["baseline_pr_auc"]) < 1e-2  # the baseline itself (float32 splits)
        assert "(tuned HistGradientBoosting)" in run.stdout
    else:
        assert described["candidate_kind"] == "mlp" and metrics["pr_auc"] == metrics["mlp_pr_auc"]
        assert metrics["mlp_pr_auc"] >= 0.98 * metrics["baseline_pr_auc"]
    reference = Reference.model_validate_json(model.metadata[REFERENCE_KEY])  # what the monitor's PSI compares with
    assert set(reference.histograms) == {*FEATURE_NAMES, SCORE} and reference.rows > 1000
    train = pd.read_parquet(data_dir / "training" / "train.parquet")
    assert max(reference.psi({name: train[name].to_numpy() for name in FEATURE_NAMES}).values()) < 1e-3

    report = (data_dir / "reports" / "latest.html").read_text()
    assert "<img alt='precision-recall curves' src='data:image/png;base64," in report
    assert (data_dir / "deployments.jsonl").read_text().count('"version": "1"') == 1


def test_a_second_run_promotes_only_if_better_and_says_so(first_run) -> None:
    data_dir, _ = first_run
    again = fraud(data_dir, "pipeline", "run")
    assert again.returncode == 0, again.stderr[-3000:]
    decision = json.loads((data_dir / "pipeline" / "last_decision.json").read_text())
    versions = json.loads(fraud(data_dir, "models", "list", "--json").stdout)
    if decision["promoted"]:
        assert decision["candidate_pr_auc"] > decision["production_pr_auc"]
        assert "promoted v2" in again.stdout and [v["production"] for v in versions] == [False, True]
    else:  # not better than production, or beaten by the tuned baseline: the reason says which
        assert (decision["candidate_pr_auc"] <= decision["production_pr_auc"]
                or "the tuned HistGradientBoosting baseline wins" in decision["reason"]), decision
        assert "kept production v1" in again.stdout and "nothing to deploy" in again.stdout
        assert [v["version"] for v in versions] == ["1"]


def test_the_gate_on_real_models(first_run, tmp_path: Path) -> None:
    data_dir, _ = first_run
    test = pd.read_parquet(data_dir / "training" / "test.parquet")
    trained = Path(json.loads(fraud(data_dir, "models", "list", "--json").stdout)[0]["uri"].removeprefix("file://"))
    untrained = export_onnx(build_model(test[list(FEATURE_NAMES)].to_numpy("float32"), seed=1), tmp_path / "untrained.onnx")
    from fraud.onnx_model import write_metadata

    write_metadata(untrained, {"feature_names": list(FEATURE_NAMES)})
    settings = Settings(data_dir=tmp_path / "gate", _env_file=None)
    registry, store = EmbeddedRegistry(tmp_path / "gate" / "registry.json"), LocalArtifactStore(tmp_path / "gate" / "artifacts")

    # Rule 3 alone (better than production or not): without evaluate's metrics the baseline rule has nothing to go on.
    # At this test's size (2,000 users) the tuned baseline beats the MLP, and rule 2 is checked below.
    unmeasured = tmp_path / "unmeasured.onnx"
    shutil.copy(trained, unmeasured)
    write_metadata(unmeasured, {"metrics": {}})
    first = gate_and_register(untrained, test, settings, registry, store)
    better = gate_and_register(unmeasured, test, settings, registry, store)
    worse = gate_and_register(untrained, test, settings, registry, store)
    assert first.promoted and "first model" in first.reason
    assert better.promoted and better.version == "2" and "beats production v1" in better.reason
    assert not worse.promoted and "kept production v2" in worse.reason
    assert registry.production(settings.model_name).version == "2"

    reordered = tmp_path / "reordered.onnx"
    shutil.copy(untrained, reordered)
    write_metadata(reordered, {"feature_names": list(reversed(FEATURE_NAMES))})
    other_features = gate_and_register(reordered, test, settings, registry, store)
    assert not other_features.promoted and "other features than the stream worker computes" in other_features.reason
    weak = tmp_path / "weak.onnx"
    shutil.copy(trained, weak)
    write_metadata(weak, {"metrics": {"pr_auc": 0.50, "baseline_pr_auc": 0.60}})
    beaten = gate_and_register(weak, test, settings, registry, store)
    assert not beaten.promoted and "kept production v2: the tuned HistGradientBoosting baseline wins" in beaten.reason
    measured = OnnxFraudModel(trained).describe()["metrics"]  # the real figures evaluate wrote
    real = gate_and_register(trained, test, settings, registry, store)
    if measured["pr_auc"] < 0.98 * measured["baseline_pr_auc"]:
        assert not real.promoted and f"the baseline's {measured['baseline_pr_auc']:.4f}" in real.reason
    else:
        assert "baseline wins" not in real.reason
    assert registry.production(settings.model_name).version == "2"
