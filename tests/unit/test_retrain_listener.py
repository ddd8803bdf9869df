"""The retrain listener runs one pipeline at a time; requests that arrive while it goes join it.

The run is a fake that waits for the test to let it finish, so "while it goes" is
decided by the test, not by timing; the consumer is a fake too (the real broker is
in tests/integration/test_retrain_listener.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fraud.errors import FraudError
from fraud.events import RetrainRequest, encode
from training_pipeline.retrain import Journal, RetrainListener, serve


def asked(by: str, reason: str = "PR-AUC low") -> RetrainRequest:
    return RetrainRequest(reason=reason, metrics={"pr_auc": 0.3}, requested_at=datetime.now(UTC), requested_by=by)


class HeldRun:
    """A run that records who started it and ends when the test releases it."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release = threading.Semaphore(0)
        self.begun = threading.Semaphore(0)

    def __call__(self, request: RetrainRequest) -> str:
        self.started.append(request.requested_by)
        self.begun.release()
        assert self.release.acquire(timeout=10)
        return f"run {len(self.started)}"


def eventually(check: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_requests_during_a_run_join_it_and_a_later_one_runs_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run, journal = HeldRun(), Journal(tmp_path / "journal.jsonl")
    listener = RetrainListener(run, journal)
    caplog.set_level(logging.INFO)

    assert listener.handle(asked("monitor")) == "started"
    assert run.begun.acquire(timeout=10)
    assert listener.handle(asked("cli", "by hand")) == "joined"
    assert listener.handle(asked("monitor", "drift")) == "joined"
    assert listener.running and journal.entries() == []  # nothing answered before the run ends
    run.release.release()
    assert listener.wait(10)
    assert listener.handle(asked("later")) == "started"
    run.release.release()
    assert listener.wait(10)

    assert run.started == ["monitor", "later"]
    assert [(e["request"]["requested_by"], e["handled"], e["outcome"]) for e in journal.entries()] == [
        ("monitor", "ran", "run 1"), ("cli", "joined", "run 1"), ("monitor", "joined", "run 1"), ("later", "ran", "run 2")]
    assert "retraining already running; request from cli (by hand) joins it" in caplog.messages


def test_a_failed_run_is_recorded_for_all_it_covered_and_the_listener_goes_on(tmp_path: Path) -> None:
    gate = threading.Event()

    def run(request: RetrainRequest) -> str:
        gate.wait(10)
        raise FraudError("the pipeline failed (train); full log: x.log")

    journal = Journal(tmp_path / "journal.jsonl")
    listener = RetrainListener(run, journal)
    listener.handle(asked("monitor"))
    listener.handle(asked("cli"))
    gate.set()
    assert listener.wait(10)
    assert [e["outcome"] for e in journal.entries()] == ["failed: the pipeline failed (train); full log: x.log"] * 2
    assert listener.handle(asked("again")) == "started"
    assert listener.wait(10)


@dataclass(frozen=True)
class Record:
    value: bytes
    headers: list[tuple[str, bytes]]
    offset: int
    topic: str = "fraud-retrain"
    partition: int = 0


class FakeConsumer:
    """Hands out the records the test adds; a commit records how many had been read then."""

    def __init__(self) -> None:
        self.waiting: list[Record] = []
        self.read = 0
        self.commits: list[int] = []
        self.lock = threading.Lock()

    def add(self, *values: bytes | RetrainRequest) -> None:
        with self.lock:
            for value in values:
                if isinstance(value, RetrainRequest):
                    _, body, headers = encode(value, "test")
                    self.waiting.append(Record(body, headers, self.read + len(self.waiting)))
                else:
                    self.waiting.append(Record(value, [], self.read + len(self.waiting)))

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[str, list[Record]]:
        with self.lock:
            batch, self.waiting = self.waiting, []
            self.read += len(batch)
        if not batch:
            time.sleep(0.01)
        return {"fraud-retrain-0": batch} if batch else {}

    def commit(self) -> None:
        self.commits.append(self.read)


def test_offsets_are_committed_once_the_run_they_started_or_joined_has_ended(tmp_path: Path,
                                                                             caplog: pytest.LogCaptureFixture) -> None:
    run, consumer, stop = HeldRun(), FakeConsumer(), threading.Event()
    journal = Journal(tmp_path / "journal.jsonl")
    loop = threading.Thread(target=serve, args=(consumer, RetrainListener(run, journal), stop.is_set), daemon=True)
    caplog.set_level(logging.INFO)
    loop.start()

    consumer.add(asked("first"), asked("second"), b"not a request")
    assert run.begun.acquire(timeout=10)
    consumer.add(asked("during"))
    eventually(lambda: consumer.read == 4)
    time.sleep(0.1)  # a few more polls: still nothing may be committed
    assert consumer.commits == []
    run.release.release()
    eventually(lambda: consumer.commits == [4])
    consumer.add(asked("after"))
    assert run.begun.acquire(timeout=10)
    run.release.release()
    eventually(lambda: consumer.commits == [4, 5])
    stop.set()
    loop.join(10)

    assert run.started == ["first", "after"]
    assert [(e["request"]["requested_by"], e["handled"]) for e in journal.entries()] == [
        ("first", "ran"), ("second", "joined"), ("during", "joined"), ("after", "ran")]
    assert any("skipped record 2 of fraud-retrain[0]" in message for message in caplog.messages)
