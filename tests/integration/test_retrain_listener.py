"""`fraud retrain --listen`'s loop against the real broker: one run at a time, requests during a run join it.

The pipeline itself is replaced by a function that records its calls and takes two
seconds: a real run takes minutes, and tests/pipeline runs the real one.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaProducer

from fraud.events import RetrainRequest, encode
from fraud.settings import Settings
from fraud.topics import committed_offsets
from training_pipeline.retrain import Journal, journal_path, listen


def publish(settings: Settings, *requested_by: str) -> None:
    """One request per name, then a record that is no request (a control topic gets those too)."""
    producer = KafkaProducer(**settings.kafka_client_config(), acks="all")
    for by in requested_by:
        key, value, headers = encode(RetrainRequest(reason="test", requested_at=datetime.now(UTC), requested_by=by), "test")
        producer.send(settings.topic_retrain, key=key, value=value, headers=headers)
    producer.send(settings.topic_retrain, key=b"retrain", value=b"not a request").get(timeout=30)
    producer.close()


def eventually(check: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_two_quick_requests_make_one_run_a_later_one_another(kafka_settings: Settings, new_topic: Callable[..., str],
                                                               tmp_path: Path) -> None:
    settings = kafka_settings.model_copy(update={"data_dir": tmp_path, "topic_retrain": new_topic("retrain", partitions=1),
                                                 "retrain_group": f"retrainer-{uuid.uuid4().hex[:8]}"})
    runs: list[str] = []
    running = threading.Event()

    def run(request: RetrainRequest) -> str:
        runs.append(request.requested_by)
        running.set()
        time.sleep(2)
        running.clear()
        return f"run {len(runs)}"

    def committed() -> dict[int, int]:
        return committed_offsets(settings, settings.retrain_group, settings.topic_retrain)

    journal = Journal(journal_path(settings))
    stop = threading.Event()
    listener = threading.Thread(target=listen, args=(settings, run, stop.is_set), daemon=True)
    listener.start()
    try:
        publish(settings, "first", "second")  # offsets 0, 1 and a bad record at 2
        eventually(running.is_set)
        assert committed() == {}  # nothing is committed while the run that answers them goes on
        eventually(lambda: len(journal.entries()) == 2)
        eventually(lambda: committed() == {0: 3})  # both requests and the bad record
        publish(settings, "later")  # offset 3 and a bad record at 4
        eventually(lambda: len(journal.entries()) == 3)
        eventually(lambda: committed() == {0: 5})
    finally:
        stop.set()
        listener.join(10)
    assert runs == ["first", "later"]
    assert [(e["request"]["requested_by"], e["handled"], e["outcome"]) for e in journal.entries()] == [
        ("first", "ran", "run 1"), ("second", "joined", "run 1"), ("later", "ran", "run 2")]
