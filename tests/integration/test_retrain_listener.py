"""`fraud retrain --listen`'s loop against the real broker: one run at a time, requests during a run join it.

The pipeline itself is replaced by a function that records its calls and takes a
second: a real run takes minutes, and tests/pipeline runs the real one.
"""

from __future__ import annotations

import json
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
from training_pipeline.retrain import journal_path, listen


def publish(settings: Settings, by: str) -> None:
    producer = KafkaProducer(**settings.kafka_client_config(), acks="all")
    key, value, headers = encode(RetrainRequest(reason="test", requested_at=datetime.now(UTC), requested_by=by), "test")
    producer.send(settings.topic_retrain, key=key, value=value, headers=headers).get(timeout=30)
    producer.send(settings.topic_retrain, key=b"retrain", value=b"not a request").get(timeout=30)
    producer.close()


def test_requests_during_a_run_join_it_and_offsets_are_committed(kafka_settings: Settings, new_topic: Callable[..., str],
                                                                  tmp_path: Path) -> None:
    settings = kafka_settings.model_copy(update={"data_dir": tmp_path, "topic_retrain": new_topic("retrain", partitions=1),
                                                 "retrain_group": f"retrainer-{uuid.uuid4().hex[:8]}"})
    runs: list[str] = []
    started = threading.Event()

    def run(request: RetrainRequest) -> str:
        runs.append(request.requested_by)
        started.set()
        time.sleep(2)
        return "ran"

    stop = threading.Event()
    listener = threading.Thread(target=listen, args=(settings, run, stop.is_set), daemon=True)
    listener.start()
    try:
        publish(settings, "first")
        assert started.wait(30)
        publish(settings, "during")  # made while the first run goes on
        journal = journal_path(settings)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not journal.exists() or len(journal.read_text().splitlines()) < 2):
            time.sleep(0.2)
        publish(settings, "after")
        while time.monotonic() < deadline and len(journal.read_text().splitlines()) < 3:
            time.sleep(0.2)
        while time.monotonic() < deadline and committed_offsets(settings, settings.retrain_group, settings.topic_retrain) != {0: 6}:
            time.sleep(0.2)  # the last bad record, skipped and committed too
    finally:
        stop.set()
        listener.join(10)
    outcomes = [(e["request"]["requested_by"], e["outcome"]) for e in map(json.loads, journal.read_text().splitlines())]
    assert [by for by, _ in outcomes] == ["first", "during", "after"]
    assert outcomes[0][1] == "ran" and outcomes[1][1].startswith("joined") and outcomes[2][1] == "ran"
    assert runs == ["first", "after"]
    assert committed_offsets(settings, settings.retrain_group, settings.topic_retrain) == {0: 6}  # bad records too
