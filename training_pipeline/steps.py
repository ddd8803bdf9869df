"""The pipeline's steps as plain functions over paths, called by the thin KFP components in `pipeline.py`.

Each takes the data dir ("" means: settings from the environment, as on a
cluster) and the local paths KFP gives its input and output artifacts. Each
records its wall time, so `fraud pipeline run` and `fraud bench pipeline` can
report per-step timings.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from fraud.features import FEATURE_NAMES
from fraud.settings import Settings, load_settings

log = logging.getLogger(__name__)
RUN_ID_ENV = "FRAUD_PIPELINE_RUN_ID"
T = TypeVar("T")


def settings_for(data_dir: str) -> Settings:
    """Settings from the environment, with the data dir the pipeline was given (if any)."""
    return load_settings(data_dir=data_dir or None)


def pipeline_dir(settings: Settings) -> Path:
    """Where local runs keep their decisions and timings."""
    return settings.data_dir / "pipeline"


def timed(step: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Log the step's wall time and append it (with its Unix start and end) to <data dir>/pipeline/timings.jsonl."""

    def wrap(function: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(function)
        def run(data_dir: str, *args: Any, **kwargs: Any) -> T:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
            started, began_at = time.perf_counter(), time.time()
            result = function(data_dir, *args, **kwargs)
            seconds = time.perf_counter() - started
            log.info("step %s took %.1fs", step, seconds)
            directory = pipeline_dir(settings_for(data_dir))
            directory.mkdir(parents=True, exist_ok=True)
            with (directory / "timings.jsonl").open("a") as timings:  # Unix start and end: a benchmark's memory samples
                timings.write(json.dumps({"run": os.environ.get(RUN_ID_ENV, ""), "step": step, "seconds": seconds,
                                          "started": began_at, "ended": time.time()}) + "\n")
            return result

        return run

    return wrap


@timed("prep")
def run_prep(data_dir: str, users: int, manifest_out: str) -> dict[str, int]:
    """Generate data if there is none, then the Spark prep; the manifest is the step's artifact."""
    from fraud.datagen import GenerationSpec, generate
    from training_pipeline.prep import prepare, read_text

    settings = settings_for(data_dir)
    raw = Path(settings.raw_location)
    if "://" not in settings.raw_location and not (raw / "transactions.parquet").exists():
        log.info("no data in %s: generating %d users", raw, users or settings.pipeline_users)
        generate(GenerationSpec(users=users or settings.pipeline_users, seed=settings.train_seed), raw)
    if settings.spark_submit == "operator":
        from training_pipeline.spark_submit import prepare_with_operator

        result = prepare_with_operator(settings)
    else:
        result = prepare(settings)
    Path(manifest_out).parent.mkdir(parents=True, exist_ok=True)
    Path(manifest_out).write_text(read_text(settings, result.manifest_path))  # a local path or s3a://
    return result.rows_per_split


@timed("features")
def run_features(data_dir: str, manifest_path: str) -> list[str]:
    """Feast apply + materialize over the prepared window."""
    from fraud.feature_store import apply_and_materialize

    window = json.loads(Path(manifest_path).read_text())["split"]
    result = apply_and_materialize(settings_for(data_dir), datetime.fromisoformat(window["start"]),
                                   datetime.fromisoformat(window["end"]))
    return result.applied


@timed("training_data")
def run_training_data(data_dir: str, train_out: str, valid_out: str, test_out: str,
                      labelled_window_days: float = 0.0, traffic_out: str | None = None) -> dict[str, int]:
    """Point-in-time train/valid/test from Feast (plus labelled served rows of the window), into <data dir>/training.

    ``labelled_window_days`` 0 means FRAUD_RETRAIN_LABELLED_WINDOW_DAYS (whose default, 0, means none).
    ``traffic_out`` gets the window's served traffic (every scored transaction's features; no rows without a window).
    Returns the number of served rows each split received.
    """
    from training_pipeline.training_data import build_training_sets

    settings = settings_for(data_dir)
    window = labelled_window_days or settings.retrain_labelled_window_days
    served, seen = None, pd.DataFrame(columns=list(FEATURE_NAMES), dtype="float64")
    if window > 0:
        from training_pipeline.served import read_served, split_by_time

        labelled, seen = read_served(settings, window)
        served = split_by_time(labelled)
    paths = build_training_sets(settings, served=served)
    for split, out in (("train", train_out), ("valid", valid_out), ("test", test_out)):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths[split], out)
    if traffic_out is not None:
        Path(traffic_out).parent.mkdir(parents=True, exist_ok=True)
        seen.to_parquet(traffic_out, index=False)
    return {split: len(rows) for split, rows in (served or {}).items()}


@timed("train")
def run_train(data_dir: str, train_path: str, valid_path: str, test_path: str, model_out: str,
              traffic_path: str | None = None) -> dict[str, float]:
    """Keras training and the ONNX export (with the parity check), with its drift reference."""
    from training_pipeline.train import save_drift_reference, train

    frames = [pd.read_parquet(p) for p in (train_path, valid_path, test_path)]
    result = train(*frames, settings_for(data_dir), Path(model_out))
    save_drift_reference(Path(model_out), Path(train_path), Path(valid_path), traffic_path and Path(traffic_path))
    return {"epochs": result.epochs, "best_val_pr_auc": result.best_val_pr_auc, "onnx_keras_max_diff": result.max_parity_diff}


@timed("evaluate")
def run_evaluate(data_dir: str, model_path: str, train_path: str, valid_path: str, test_path: str,
                 manifest_path: str, candidate_out: str, report_out: str,
                 traffic_path: str | None = None):  # -> Evaluation
    """Metrics, threshold and report; the candidate is the ONNX model with all of it in its metadata."""
    from fraud.onnx_model import write_metadata
    from training_pipeline.evaluate import evaluate

    settings = settings_for(data_dir)
    frames = [pd.read_parquet(p) for p in (train_path, valid_path, test_path)]
    Path(candidate_out).parent.mkdir(parents=True, exist_ok=True)
    baseline_out = Path(candidate_out).with_name("baseline.onnx")
    evaluation = evaluate(Path(model_path), *frames, settings, report_path=Path(report_out), baseline_out=baseline_out)
    window = json.loads(Path(manifest_path).read_text())["split"]
    if evaluation.candidate_kind == "hgb":  # the tuned baseline won: it is the candidate, with its own drift reference
        from training_pipeline.train import save_drift_reference

        shutil.move(baseline_out, candidate_out)
        save_drift_reference(Path(candidate_out), Path(train_path), Path(valid_path), traffic_path and Path(traffic_path))
    else:
        shutil.copyfile(model_path, candidate_out)
    write_metadata(Path(candidate_out), {
        "model_name": settings.model_name, "feature_names": list(FEATURE_NAMES), "threshold": evaluation.threshold,
        "metrics": evaluation.metrics(), "train_window": {"start": window["profile_end"], "end": window["valid_start"]},
        "opset": "17", "candidate_kind": evaluation.candidate_kind,
    })
    reports = settings.data_dir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(report_out, reports / "latest.html")
    return evaluation


@timed("register")
def run_register(data_dir: str, candidate_path: str, test_path: str, decision_out: str) -> dict:
    """The gate: register and promote only a better model; the decision is the step's artifact."""
    from training_pipeline.register import gate_and_register

    settings = settings_for(data_dir)
    decision = gate_and_register(Path(candidate_path), pd.read_parquet(test_path), settings).as_dict()
    Path(decision_out).parent.mkdir(parents=True, exist_ok=True)
    Path(decision_out).write_text(json.dumps(decision, indent=2))
    directory = pipeline_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "last_decision.json").write_text(json.dumps(decision, indent=2))
    return decision


@timed("deploy")
def run_deploy(data_dir: str, decision_path: str) -> str:
    """Roll out what the gate promoted (locally: record it)."""
    from training_pipeline.deploy import deploy

    message = deploy(json.loads(Path(decision_path).read_text()), settings_for(data_dir))
    log.info(message)
    return message
