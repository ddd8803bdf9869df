"""`fraud labels` against the real broker; the topic is read back with a plain kafka-python consumer."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from kafka import KafkaConsumer

from fraud.events import LABEL_TYPE, Label, decode
from fraud.settings import Settings


def fraud_labels(settings: Settings, topic: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FRAUD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "FRAUD_TOPIC_LABELS": topic,
           "FRAUD_LABEL_CLEARED_SHARE": "0.5"}
    return subprocess.run([sys.executable, "-m", "fraud.cli", "labels", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def read_all(settings: Settings, topic: str, expected: int) -> list[tuple[bytes, bytes, list]]:
    consumer = KafkaConsumer(topic, **settings.kafka_client_config(), group_id=None, auto_offset_reset="earliest",
                             consumer_timeout_ms=5_000)
    try:
        records = [(r.key, r.value, r.headers) for r in consumer]
    finally:
        consumer.close()
    assert len(records) == expected
    return records


def test_ground_truth_becomes_delayed_labels_on_the_topic(kafka_settings: Settings, new_topic: Callable[..., str],
                                                          tmp_path: Path) -> None:
    n = 400
    start = datetime(2026, 3, 1, tzinfo=UTC)
    frauds = np.arange(n) % 8 == 0
    path = tmp_path / "replay.parquet"
    pq.write_table(pa.table({"transaction_id": [f"tx-{i}" for i in range(n)], "user_id": [f"user_{i % 40}" for i in range(n)],
                             "event_time": [start + timedelta(minutes=i) for i in range(n)], "fraud": frauds}), path)
    topic = new_topic("labels")
    result = fraud_labels(kafka_settings, topic, "--dataset", str(path))
    assert result.returncode == 0, result.stderr
    delivered = int(result.stdout.split("delivered")[1].split()[0].replace(",", ""))
    records = read_all(kafka_settings, topic, delivered)
    labels = [decode(value, Label, headers) for _, value, headers in records]
    assert all(dict(headers)["content-type"] == b"application/cloudevents+json" for _, _, headers in records)
    assert all(key.decode() == label.user_id for (key, _, _), label in zip(records, labels, strict=True))
    frauds_labelled = {label.transaction_id for label in labels if label.is_fraud}
    assert frauds_labelled == {f"tx-{i}" for i in np.flatnonzero(frauds)}
    cleared = sum(1 for label in labels if not label.is_fraud)
    assert 0.35 * (~frauds).sum() < cleared < 0.65 * (~frauds).sum()
    assert LABEL_TYPE == "fraud.label.v1"


def test_bad_outcome_rows_fail_the_command_with_their_reason_and_the_good_ones_go_out(
        kafka_settings: Settings, new_topic: Callable[..., str], tmp_path: Path) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text("transaction_id,user_id,is_fraud\ntx-1,user_1,true\ntx-2,nobody,false\ntx-3,user_3,false\n")
    topic = new_topic("labels")
    result = fraud_labels(kafka_settings, topic, "--dataset", str(path))
    assert result.returncode == 1
    assert "1 rows rejected: row 1: user_id" in result.stderr and "Traceback" not in result.stderr
    labels = [decode(value, Label, headers) for _, value, headers in read_all(kafka_settings, topic, 2)]
    assert sorted((label.transaction_id, label.source) for label in labels) == [("tx-1", "chargeback"), ("tx-3", "cleared")]


def test_a_missing_file_is_one_line(kafka_settings: Settings, new_topic: Callable[..., str], tmp_path: Path) -> None:
    result = fraud_labels(kafka_settings, new_topic("labels"), "--dataset", str(tmp_path / "none.parquet"))
    assert result.returncode != 0 and "does not exist" in result.stderr and "Traceback" not in result.stderr
