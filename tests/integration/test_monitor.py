"""The monitor as users run it (its own process, its own consumer group) against the real broker.

Score and label events are published here with a plain kafka-python producer; the
monitor's figures, read from its /metrics, must equal scikit-learn's on the same
joined rows, and its low PR-AUC must put exactly one retraining request on the topic.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaConsumer, KafkaProducer
from sklearn.metrics import average_precision_score, precision_score, recall_score

from fraud.events import Label, RetrainRequest, Score, decode, encode
from fraud.local_stack import process
from fraud.local_stack.monitor import LocalMonitor, monitor_metrics
from fraud.settings import Settings
from fraud.topics import create_topics, delete_topics
from tests.conftest import free_port

N = 600
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _outcomes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The test's truth, scores (a model no better than chance: PR-AUC near the fraud rate) and which are labelled."""
    rng = np.random.default_rng(11)
    return rng.random(N) < 0.1, rng.random(N), rng.random(N) < 0.7


@pytest.fixture
def running_monitor(kafka_settings: Settings, tmp_path: Path) -> Iterator[LocalMonitor]:
    suffix = uuid.uuid4().hex[:8]
    settings = kafka_settings.model_copy(update={
        "data_dir": tmp_path, "topic_scores": f"scores-{suffix}", "topic_labels": f"labels-{suffix}",
        "topic_retrain": f"retrain-{suffix}", "monitor_app_id": f"monitor-{suffix}", "monitor_metrics_port": free_port(),
        # The trigger may fire only once every label is in, so the request's PR-AUC is the whole window's: with
        # fewer, a refresh while the labels still arrived requested retraining on part of them.
        "monitor_min_labels": int(_outcomes()[2].sum()), "monitor_min_pr_auc": 0.5, "monitor_refresh_s": 0.5})
    topics = {settings.topic_scores: 3, settings.topic_labels: 2, settings.topic_retrain: 1}
    create_topics(settings, topics)
    monitor = LocalMonitor(settings)
    try:
        monitor.start()
        yield monitor
    finally:
        monitor.stop()
        delete_topics(settings, list(topics))


def test_the_monitor_s_window_equals_sklearn_and_a_low_pr_auc_requests_retraining_once(running_monitor: LocalMonitor) -> None:
    monitor_settings = running_monitor.settings

    def wait_for(check, timeout_s: float, what: str) -> None:
        process.wait_until(check, timeout_s, running_monitor.files, running_monitor.files.read_pid(), what)
    truth, values, labelled = _outcomes()
    producer = KafkaProducer(**monitor_settings.kafka_client_config(), acks="all")
    for i in range(N):
        score = Score(transaction_id=f"tx-{i}", user_id=f"user_{i % 13}", event_time=T0 + timedelta(seconds=i),
                      score=float(values[i]), decision="fraud" if values[i] >= 0.5 else "legit", threshold=0.5,
                      model_name="fraud-detection", model_version="7", scored_at=T0 + timedelta(seconds=i), latency_ms=2.0,
                      features={"amount": float(i)})
        producer.send(monitor_settings.topic_scores, **_record(encode(score, "test")))
        if labelled[i]:
            label = Label(transaction_id=f"tx-{i}", user_id=f"user_{i % 13}", is_fraud=bool(truth[i]),
                          source="chargeback" if truth[i] else "cleared", reported_at=T0 + timedelta(days=2))
            producer.send(monitor_settings.topic_labels, **_record(encode(label, "test")))
    producer.send(monitor_settings.topic_labels, key=b"user_1", value=b"not an event")
    producer.flush()
    producer.close()

    expected_labels = int(labelled.sum())
    wait_for(lambda: (monitor_metrics(monitor_settings) or {}).get("fraud_monitor_labels_in_window") == expected_labels,
             60, "every labelled transaction in the monitor's window")
    metrics = monitor_metrics(monitor_settings)
    y, s = truth[labelled], values[labelled]
    assert math.isclose(metrics["fraud_monitor_pr_auc"], average_precision_score(y, s), rel_tol=1e-9)
    assert math.isclose(metrics["fraud_monitor_precision"], precision_score(y, s >= 0.5), rel_tol=1e-9)
    assert math.isclose(metrics["fraud_monitor_recall"], recall_score(y, s >= 0.5), rel_tol=1e-9)
    assert metrics["fraud_monitor_model_version:7"] == 1
    assert metrics["fraud_monitor_bad_records_total"] == 1

    wait_for(lambda: (monitor_metrics(monitor_settings) or {}).get("fraud_monitor_retrain_requests_total") == 1,
             30, "a retraining request")
    consumer = KafkaConsumer(monitor_settings.topic_retrain, **monitor_settings.kafka_client_config(), group_id=None,
                             auto_offset_reset="earliest", consumer_timeout_ms=5_000)
    requests = [decode(record.value, RetrainRequest, record.headers) for record in consumer]
    consumer.close()
    assert len(requests) == 1  # the window stays bad, but one run is in flight (and the cooldown holds)
    assert monitor_metrics(monitor_settings)["fraud_monitor_retrain_requests_total:pr_auc"] == 1
    assert requests[0].requested_by == "monitor" and "PR-AUC" in requests[0].reason
    assert math.isclose(requests[0].metrics["pr_auc"], average_precision_score(y, s), rel_tol=1e-9)


def _record(message: tuple[bytes, bytes, list]) -> dict:
    key, value, headers = message
    return {"key": key, "value": value, "headers": headers}
