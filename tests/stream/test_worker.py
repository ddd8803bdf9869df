"""The stream scorer end to end: real broker, real predictor, real Feast store, real Faust worker processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pandas as pd
import pytest
from kafka import KafkaProducer

from fraud.events import Score, decode, encode
from fraud.settings import Settings
from producers.publisher import publish
from producers.sources import SyntheticSource
from tests.conftest import make_transaction
from tests.integration.test_roundtrip import consume_all
from tests.predictor.conftest import Predictor
from stream_scorer.seed import seed_state
from tests.stream.conftest import Worker, put_profiles


@pytest.fixture(scope="module")
def worker(stream_settings: Settings, predictor: Predictor) -> Iterator[Worker]:
    put_profiles(stream_settings, {f"user_{i}": (48.0 + i / 100, 11.0, 20.0 + i) for i in range(150)})
    running = Worker(stream_settings)
    yield running
    running.stop()


def test_ten_thousand_transactions_in_ten_thousand_scores_out(stream_settings: Settings, worker: Worker) -> None:
    report = publish(SyntheticSource(10_000, users=200, seed=11), stream_settings, topic=stream_settings.topic_transactions)
    assert report.delivered == 10_000
    messages = consume_all(stream_settings, stream_settings.topic_scores, expected=10_000, timeout_s=120)
    scores = [decode(m.value, Score) for m in messages]
    assert len({s.transaction_id for s in scores}) == 10_000, worker.log_tail()
    assert all(m.key == s.user_id.encode() for m, s in zip(messages, scores, strict=True))
    assert {s.model_version for s in scores} == {"1"}
    metrics = worker.wait_for(lambda m: m and m["fraud_scorer_scores_out_total"] >= 10_000, "10,000 scores")
    assert metrics["fraud_scorer_events_in_total"] == 10_000 and metrics["fraud_scorer_dead_letters_total"] == 0


def _transaction_record(number: int) -> tuple[bytes, bytes, list]:
    return encode(make_transaction(number, transaction_id=f"tx-dlq-{number}"), "tests")


def _with_data(value: bytes, **changes: object) -> bytes:
    event = orjson.loads(value)
    event["data"] = {k: v for k, v in {**event["data"], **changes}.items() if v is not _DROP}
    return orjson.dumps(event)


_DROP = object()


def test_malformed_events_go_to_the_dlq_with_reasons_and_the_good_ones_are_scored(
    stream_settings: Settings, worker: Worker
) -> None:
    good = [_transaction_record(n) for n in range(3)]
    key, value, headers = good[0]
    bad = {
        b"{not json": "not a JSON CloudEvent",
        _with_data(value, amount=_DROP): "amount: Field required",
        _with_data(value, amount="12.5"): "amount: Input should be a valid number",
        _with_data(value, amount=-5.0): "amount: Input should be greater than or equal to 0",
    }
    before = worker.metrics()["fraud_scorer_dead_letters_total"]
    producer = KafkaProducer(**stream_settings.kafka_client_config(), acks="all")
    sends = [good[0], *((key, payload, headers) for payload in bad), good[1], good[2]]
    for k, v, h in sends:
        producer.send(stream_settings.topic_transactions, key=k, value=v, headers=h)
    producer.flush()
    producer.close()

    letters = consume_all(stream_settings, stream_settings.topic_dlq, expected=len(bad), timeout_s=60)
    assert sorted(m.value for m in letters) == sorted(bad)  # the original payloads, byte for byte
    for message in letters:
        reason = dict(message.headers)["fraud-dlq-reason"].decode()
        assert bad[message.value] in reason, reason
        assert dict(message.headers)["fraud-dlq-origin"].decode().startswith(f"{stream_settings.topic_transactions}/")
    scored = {decode(m.value, Score).transaction_id
              for m in consume_all(stream_settings, stream_settings.topic_scores, expected=10_003, timeout_s=60)}
    assert {f"tx-dlq-{n}" for n in range(3)} <= scored
    assert worker.metrics()["fraud_scorer_dead_letters_total"] == before + len(bad)


def test_a_down_predictor_pauses_scoring_and_nothing_is_lost(
    stream_settings: Settings, worker: Worker, predictor: Predictor
) -> None:
    before = worker.metrics()["fraud_scorer_scores_out_total"]
    predictor.stop()
    report = publish(SyntheticSource(300, users=50, seed=12), stream_settings, topic=stream_settings.topic_transactions)
    assert report.delivered == 300
    worker.wait_for(lambda m: m["fraud_scorer_consumption_paused"] == 1, "pause while the predictor is down")
    time.sleep(1.0)
    assert worker.metrics()["fraud_scorer_scores_out_total"] == before  # no made-up scores meanwhile
    assert worker.metrics()["fraud_scorer_predictor_failures_total"] > stream_settings.predictor_retries

    revived = Predictor(stream_settings)
    try:
        metrics = worker.wait_for(lambda m: m["fraud_scorer_scores_out_total"] >= before + 300, "scores after recovery")
        assert metrics["fraud_scorer_scores_out_total"] == before + 300
        assert metrics["fraud_scorer_consumption_paused"] == 0
    finally:
        predictor.process = revived.process  # the fixture stops whichever runs last
        predictor.log = revived.log


def _send_one(settings: Settings, transaction) -> None:
    producer = KafkaProducer(**settings.kafka_client_config(), acks="all")
    producer.send(settings.topic_transactions, *_as_send_args(encode(transaction, "tests")))
    producer.flush()
    producer.close()


def _score_of(settings: Settings, transaction_id: str, expected_total: int) -> Score:
    scores = consume_all(settings, settings.topic_scores, expected=expected_total, timeout_s=90)
    found = [s for m in scores if transaction_id.encode() in m.value and (s := decode(m.value, Score))]
    assert len(found) == 1, [s.transaction_id for s in found]
    return found[0]


def test_a_restarted_worker_keeps_each_users_history_and_seeding_resets_it(stream_settings: Settings, worker: Worker) -> None:
    everything = consume_all(stream_settings, stream_settings.topic_scores, expected=10_303, timeout_s=60)
    seen = sum(1 for m in everything if m.key == b"user_5")
    assert seen > 10
    worker.stop()
    restarted = Worker(stream_settings)  # the table comes back from its changelog topic
    try:
        restarted.wait_for(lambda m: m["fraud_scorer_ready"] == 1, "table recovery")
        _send_one(stream_settings, make_transaction(5, transaction_id="tx-after-restart", user_id="user_5"))
        restarted.wait_for(lambda m: m["fraud_scorer_scores_out_total"] == 1, "the new score")
        # One more than expected, to see that nothing else (no redelivered batch) was scored again.
        scores = consume_all(stream_settings, stream_settings.topic_scores, expected=len(everything) + 2, timeout_s=10)
        assert len(scores) == len(everything) + 1, restarted.log_tail()
        assert _score_of(stream_settings, "tx-after-restart", len(everything) + 1).features["history_count"] == seen
    finally:
        restarted.stop()

    # Seed a history of five transactions for a user the worker never saw: the table becomes exactly that.
    history = [make_transaction(7, transaction_id=f"tx-history-{n}", user_id="user_777", amount=10.0 * (n + 1),
                                event_time=datetime(2026, 1, 1, n, tzinfo=UTC)) for n in range(5)]
    path = stream_settings.data_dir / "history.parquet"
    pd.DataFrame([t.model_dump() for t in history]).to_parquet(path)
    assert seed_state(stream_settings, path) == 1
    seeded_worker = Worker(stream_settings)
    try:
        seeded_worker.wait_for(lambda m: m["fraud_scorer_ready"] == 1, "table recovery")
        _send_one(stream_settings, make_transaction(7, transaction_id="tx-after-seed", user_id="user_777", amount=60.0))
        _send_one(stream_settings, make_transaction(5, transaction_id="tx-after-reset", user_id="user_5"))
        seeded_worker.wait_for(lambda m: m["fraud_scorer_scores_out_total"] == 2, "two new scores")
        seeded = _score_of(stream_settings, "tx-after-seed", len(everything) + 3).features
        assert (seeded["history_count"], seeded["history_mean_amount"], seeded["history_max_amount"]) == (5.0, 30.0, 50.0)
        assert _score_of(stream_settings, "tx-after-reset", len(everything) + 3).features["history_count"] == 0.0
    finally:
        worker.process = seeded_worker.process  # the fixture stops the running one


def _as_send_args(record: tuple[bytes, bytes, list]) -> tuple:
    key, value, headers = record
    return (value, key, headers)
