"""The retrain listener runs one pipeline at a time; requests made before a run ended join that run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fraud.errors import FraudError
from fraud.events import RetrainRequest
from training_pipeline.retrain import RetrainListener

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def asked(at: datetime, by: str = "monitor") -> RetrainRequest:
    return RetrainRequest(reason="PR-AUC low", metrics={"pr_auc": 0.3}, requested_at=at, requested_by=by)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_requests_made_during_a_run_join_it_and_a_later_one_runs_again(tmp_path: Path) -> None:
    clock, runs = Clock(), []

    def run(request: RetrainRequest) -> str:
        runs.append(request.requested_by)
        clock.now += timedelta(minutes=5)  # the run takes five minutes
        return f"run {len(runs)}"

    listener = RetrainListener(run, tmp_path / "journal.jsonl", now=clock)
    assert listener.handle(asked(T0, "monitor")) == "run 1"
    assert listener.handle(asked(T0 + timedelta(minutes=2), "cli")).startswith("joined the run that ended at 12:05")
    assert listener.handle(asked(T0 + timedelta(minutes=6), "monitor")) == "run 2"
    assert runs == ["monitor", "monitor"]
    journal = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert [entry["request"]["requested_by"] for entry in journal] == ["monitor", "cli", "monitor"]


def test_a_failed_run_is_recorded_and_the_listener_goes_on(tmp_path: Path) -> None:
    def run(request: RetrainRequest) -> str:
        raise FraudError("the pipeline failed (train); full log: x.log")

    listener = RetrainListener(run, tmp_path / "journal.jsonl", now=Clock())
    assert listener.handle(asked(T0)) == "failed: the pipeline failed (train); full log: x.log"
