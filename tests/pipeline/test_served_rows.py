"""Served rows read back from a real broker: score and label events in, training rows out, and into the training sets."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from kafka import KafkaProducer

from fraud.events import Label, Score, encode
from fraud.features import FEATURE_NAMES
from fraud.feature_store import apply_and_materialize
from fraud.settings import Settings
from training_pipeline.prep import PrepResult
from training_pipeline.served import read_served
from training_pipeline.steps import run_training_data

NOW = datetime.now(UTC)


def score(i: int, scored_at: datetime, features: dict[str, float] | None = None) -> Score:
    return Score(transaction_id=f"tx-{i}", user_id=f"user_{i}", event_time=scored_at - timedelta(seconds=1), score=0.9,
                 decision="fraud", threshold=0.5, model_name="fraud-detection", model_version="1", scored_at=scored_at,
                 latency_ms=2.0, features=features or {name: float(i) for name in FEATURE_NAMES})


def label(i: int, is_fraud: bool, reported_at: datetime) -> Label:
    return Label(transaction_id=f"tx-{i}", user_id=f"user_{i}", is_fraud=is_fraud,
                 source="confirmed" if is_fraud else "cleared", reported_at=reported_at)


@pytest.fixture
def served_topics(kafka_settings: Settings, new_topic: Callable[..., str]) -> Settings:
    """Broker settings with fresh score and label topics holding: 3 labelled scores in the last day, and distractors."""
    settings = kafka_settings.model_copy(update={"topic_scores": new_topic("scores"), "topic_labels": new_topic("labels")})
    producer = KafkaProducer(**settings.kafka_client_config())
    old = NOW - timedelta(days=3)

    def publish(topic: str, payload: Score | Label, at: datetime) -> None:
        key, value, headers = encode(payload, "tests")
        producer.send(topic, key=key, value=value, headers=headers, timestamp_ms=int(at.timestamp() * 1000))

    for i in range(4):
        publish(settings.topic_scores, score(i, NOW - timedelta(hours=4 - i)), NOW - timedelta(hours=4 - i))
    publish(settings.topic_scores, score(4, NOW, features={"amount": 1.0}), NOW)  # an older model's inputs
    publish(settings.topic_scores, score(5, old), old)  # outside a 1-day window
    producer.send(settings.topic_scores, key=b"user_9", value=b"not an event")
    for i, is_fraud in ((0, True), (1, False), (2, True), (4, True), (5, True)):  # tx-3 is not labelled yet
        publish(settings.topic_labels, label(i, is_fraud, NOW), NOW)
    producer.flush()
    producer.close()
    return settings


def test_labelled_scores_of_the_window_are_read_back_as_rows(served_topics: Settings) -> None:
    settings = served_topics
    started = time.monotonic()
    rows, traffic = read_served(settings, window_days=1.0)
    assert time.monotonic() - started < 30
    assert rows[FEATURE_NAMES[0]].tolist() == [0.0, 1.0, 2.0] and rows["fraud"].tolist() == [1, 0, 1]
    assert rows[list(FEATURE_NAMES)].to_numpy().tolist() == [[float(i)] * len(FEATURE_NAMES) for i in range(3)]
    assert sorted(traffic[FEATURE_NAMES[0]]) == [0.0, 1.0, 2.0, 3.0]  # every scored one (partition order), tx-3 unlabelled too
    assert len(read_served(settings, window_days=4.0)[0]) == 4  # the older score joins once the window reaches it


def test_the_training_data_step_adds_them_oldest_to_train_newest_to_test(
        served_topics: Settings, prepared: tuple[Settings, PrepResult], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    history, result = prepared
    apply_and_materialize(history, result.split.start, result.split.end)
    for name, value in (("KAFKA_BOOTSTRAP", served_topics.kafka_bootstrap), ("TOPIC_SCORES", served_topics.topic_scores),
                        ("TOPIC_LABELS", served_topics.topic_labels), ("RETRAIN_LABELLED_WINDOW_DAYS", "1")):
        monkeypatch.setenv(f"FRAUD_{name}", value)
    outputs = {split: tmp_path / f"{split}.parquet" for split in ("train", "valid", "test")}
    traffic = tmp_path / "traffic.parquet"
    added = run_training_data(str(history.data_dir), *map(str, outputs.values()), traffic_out=str(traffic))  # the setting's window
    assert added == {"train": 2, "valid": 1, "test": 0}  # 3 rows: round(0.6 * 3) oldest, round(0.2 * 3) next, the rest
    assert len(pd.read_parquet(traffic)) == 4
    frames = {split: pd.read_parquet(path) for split, path in outputs.items()}
    assert frames["train"][list(FEATURE_NAMES)].tail(2).to_numpy().tolist() == [[0.0] * 14, [1.0] * 14]
    assert frames["valid"][list(FEATURE_NAMES)].tail(1).to_numpy().tolist() == [[2.0] * 14]
    monkeypatch.setenv("FRAUD_RETRAIN_LABELLED_WINDOW_DAYS", "0")
    assert run_training_data(str(history.data_dir), *map(str, outputs.values())) == {}
    assert len(pd.read_parquet(outputs["train"])) == len(frames["train"]) - 2
