"""Retraining runs: by hand (`fraud retrain`, `fraud pipeline run`) and on request (`fraud retrain --listen`).

A request is a `fraud.retrain.requested.v1` event on `fraud-retrain` (from the
monitor, from `fraud retrain --request`, or from any producer). The listener
runs one pipeline at a time; requests made while a run was going are covered by
it and join it instead of starting another run each.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fraud.errors import FraudError
from fraud.events import RetrainRequest
from fraud.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    """What one local pipeline run did."""

    run_id: str
    log_path: Path
    step_seconds: dict[str, float]
    decision: str  # the gate's reason
    deployed: str  # the deploy step's message


def run_local(settings: Settings, users: int | None = None) -> RunOutcome:
    """Run the whole pipeline with kfp.local in this virtualenv; a FraudError naming the log if it fails."""
    from training_pipeline.pipeline import run_locally
    from training_pipeline.steps import pipeline_dir

    run_id = uuid.uuid4().hex[:12]
    log_path = pipeline_dir(settings) / "runs" / f"{run_id}.log"
    try:
        message = run_locally(settings.data_dir, users or settings.pipeline_users, run_id, log_path)
    except Exception as error:  # the runner raises its own types; the log has the step's traceback
        reason = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # the runner colours its messages
        raise FraudError(f"the pipeline failed ({reason}); full log: {log_path}") from error
    timings = [json.loads(line) for line in (pipeline_dir(settings) / "timings.jsonl").read_text().splitlines()]
    steps = {t["step"]: t["seconds"] for t in timings if t["run"] == run_id}
    decision = json.loads((pipeline_dir(settings) / "last_decision.json").read_text())
    return RunOutcome(run_id, log_path, steps, decision["reason"], message)


class RetrainListener:
    """Handles requests one by one: runs the pipeline, or lets a request join the run that covered it."""

    def __init__(self, run: Callable[[RetrainRequest], str], journal: Path, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.run, self.journal, self.now = run, journal, now
        self.last_run_ended: datetime | None = None

    def handle(self, request: RetrainRequest) -> str:
        """Run for ``request`` unless a run ended after it was made (that run covered it); say what happened."""
        if self.last_run_ended is not None and request.requested_at <= self.last_run_ended:
            outcome = f"joined the run that ended at {self.last_run_ended:%H:%M:%S}"
            log.info("retraining already ran for the request from %s (%s): it joins that run", request.requested_by,
                     request.reason)
        else:
            log.info("retraining requested by %s: %s", request.requested_by, request.reason)
            try:
                outcome = self.run(request)
            except FraudError as error:
                outcome = f"failed: {error}"
                log.error("retraining failed: %s", error)
            self.last_run_ended = self.now()
        self._record(request, outcome)
        return outcome

    def _record(self, request: RetrainRequest, outcome: str) -> None:
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        entry = {"at": self.now().isoformat(), "request": request.model_dump(mode="json"), "outcome": outcome}
        with self.journal.open("a") as journal:
            journal.write(json.dumps(entry) + "\n")


def journal_path(settings: Settings) -> Path:
    """Where the listener records each request and what it did."""
    return settings.data_dir / "pipeline" / "retrain_requests.jsonl"


def listen(settings: Settings, run: Callable[[RetrainRequest], str], stop: Callable[[], bool] = lambda: False) -> None:
    """Consume retraining requests (own consumer group) and handle each; its offset is committed once handled."""
    from kafka import KafkaConsumer

    from fraud.events import InvalidEvent, decode

    listener = RetrainListener(run, journal_path(settings))
    consumer = KafkaConsumer(settings.topic_retrain, **settings.kafka_client_config(), group_id=settings.retrain_group,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             max_poll_interval_ms=int(settings.retrain_max_run_s * 1000))
    try:
        while not stop():
            for records in consumer.poll(timeout_ms=1000, max_records=1).values():
                for record in records:
                    try:
                        listener.handle(decode(record.value, RetrainRequest, record.headers))
                    except InvalidEvent as error:  # a control topic: a bad record is skipped, with its reason
                        log.warning("skipped a record of %s at offset %d: %s", record.topic, record.offset, error.reason)
                    consumer.commit()
    finally:
        consumer.close()


def outcome_line(outcome: RunOutcome) -> str:
    """One line for the journal and the log."""
    return f"run {outcome.run_id}: {outcome.decision}; {outcome.deployed}"

