"""`fraud scores` prints score events that the test writes itself (the scorer comes later)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from kafka import KafkaProducer

from fraud.events import Score, encode
from fraud.settings import Settings


def write_scores(settings: Settings, topic: str, count: int) -> list[Score]:
    producer = KafkaProducer(**settings.kafka_client_config(), acks="all")
    start = datetime(2026, 5, 1, tzinfo=UTC)
    scores = []
    for n in range(count):
        score = n / count
        scores.append(Score(
            transaction_id=f"tx-{n}", user_id=f"user_{n % 3}", event_time=start + timedelta(seconds=n),
            score=score, decision="fraud" if score >= 0.8 else "legit", threshold=0.8, model_name="fraud-detection",
            model_version="1", scored_at=start + timedelta(seconds=n, milliseconds=5), latency_ms=5.0,
            features={"amount": float(n)},
        ))
    for score in scores:
        key, value, headers = encode(score, "test")
        producer.send(topic, key=key, value=value, headers=headers)
    producer.send(topic, key=b"user_0", value=b"{garbage")  # a bad record must not stop the reader
    producer.flush()
    producer.close()
    return scores


def fraud_scores(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FRAUD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    return subprocess.run([sys.executable, "-m", "fraud.cli", "scores", *args], capture_output=True, text=True, env=env, timeout=120)


def test_scores_json_from_beginning_with_max(kafka_settings: Settings, new_topic: Callable[..., str]) -> None:
    topic = new_topic("scores", partitions=1)
    written = write_scores(kafka_settings, topic, 20)
    result = fraud_scores(kafka_settings, "--topic", topic, "--from-beginning", "--max", "15", "--json")
    assert result.returncode == 0, result.stderr
    read = [Score.model_validate(json.loads(line)) for line in result.stdout.splitlines()]
    assert read == written[:15]


def test_max_counts_scores_not_the_bad_records_among_them(kafka_settings: Settings, new_topic: Callable[..., str]) -> None:
    topic = new_topic("scores", partitions=1)
    producer = KafkaProducer(**kafka_settings.kafka_client_config(), acks="all")
    producer.send(topic, key=b"user_0", value=b"{garbage")  # first on the only partition: read before any score
    producer.flush()
    producer.close()
    written = write_scores(kafka_settings, topic, 3)
    result = fraud_scores(kafka_settings, "--topic", topic, "--from-beginning", "--max", "3", "--json")
    assert result.returncode == 0, result.stderr
    assert [Score.model_validate(json.loads(line)) for line in result.stdout.splitlines()] == written
    assert "is not a score event" in result.stderr


def test_scores_human_output_skips_bad_records_with_a_warning(kafka_settings: Settings, new_topic: Callable[..., str]) -> None:
    topic = new_topic("scores", partitions=1)
    write_scores(kafka_settings, topic, 5)
    result = fraud_scores(kafka_settings, "--topic", topic, "--from-beginning", "--idle-timeout", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert "user_0" in lines[0] and "score=0.0000" in lines[0] and "model=fraud-detection:1" in lines[0]
    assert "not a score event" in result.stderr


def test_scores_follow_sees_new_events(kafka_settings: Settings, new_topic: Callable[..., str]) -> None:
    topic = new_topic("scores", partitions=2)
    env = {**os.environ, "FRAUD_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap}
    with subprocess.Popen([sys.executable, "-m", "fraud.cli", "scores", "--topic", topic, "--follow", "--max", "4", "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as follower:
        err_lines = []
        for line in follower.stderr:  # wait until it has fixed its position at the end of the topic
            err_lines.append(line)
            if "reading" in line and "from the end" in line:
                break
        written = write_scores(kafka_settings, topic, 4)
        out, err = follower.communicate(timeout=60)
        err = "".join(err_lines) + err
    assert follower.returncode == 0, err
    assert sorted(json.loads(line)["transaction_id"] for line in out.splitlines()) == sorted(s.transaction_id for s in written)


def test_scores_on_a_missing_topic_is_one_line(kafka_settings: Settings) -> None:
    result = fraud_scores(kafka_settings, "--topic", "no-such-topic-here")
    assert result.returncode == 1
    assert result.stderr.strip() == f"fraud: topic 'no-such-topic-here' does not exist on {kafka_settings.kafka_bootstrap}"
