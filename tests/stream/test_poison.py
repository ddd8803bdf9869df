"""The issue's poison event: a valid CloudEvent whose amount overflows float32 must not stop scoring.

Real broker, predictor, Feast store and a `python -m stream_scorer` process. The
paused gauge is sampled all along: the worker must never pause for a bad record.
"""

from __future__ import annotations

import threading

import orjson
from kafka import KafkaProducer

from fraud.events import Score, decode, encode
from fraud.settings import Settings
from producers.publisher import publish
from producers.sources import SyntheticSource
from tests.conftest import make_transaction
from tests.integration.test_roundtrip import consume_all
from tests.predictor.conftest import Predictor
from tests.stream.conftest import Worker, put_profiles


def _poison() -> tuple[bytes, bytes, list]:
    key, value, headers = encode(make_transaction(3, transaction_id="tx-poison"), "tests")
    event = orjson.loads(value)
    event["data"]["amount"] = 1e39  # valid JSON and a JSON number; inf as float32
    return key, orjson.dumps(event), headers


def test_a_poison_event_goes_to_the_dlq_naming_the_field_and_everything_after_it_is_scored(
    stream_settings: Settings, predictor: Predictor
) -> None:
    put_profiles(stream_settings, {f"user_{i}": (48.0, 11.0, 20.0) for i in range(100)})
    worker = Worker(stream_settings)
    paused_seen, stop_sampling = [], threading.Event()

    def sample_paused() -> None:
        while not stop_sampling.wait(0.1):
            paused_seen.append((worker.metrics() or {}).get("fraud_scorer_consumption_paused", 0.0))

    sampler = threading.Thread(target=sample_paused, daemon=True)
    sampler.start()
    try:
        worker.wait_for(lambda m: m["fraud_scorer_ready"] == 1, "table recovery")
        producer = KafkaProducer(**stream_settings.kafka_client_config(), acks="all")
        key, value, headers = _poison()
        producer.send(stream_settings.topic_transactions, key=key, value=value, headers=headers)
        producer.flush()
        producer.close()
        publish(SyntheticSource(2_000, users=100, seed=31), stream_settings, topic=stream_settings.topic_transactions)
        worker.wait_for(lambda m: m["fraud_scorer_scores_out_total"] >= 2_000, "2,000 scores")
    finally:
        stop_sampling.set()
        sampler.join()
        worker.stop()
    scored = {decode(m.value, Score).transaction_id
              for m in consume_all(stream_settings, stream_settings.topic_scores, expected=2_001, timeout_s=20)}
    assert len(scored) == 2_000 and "tx-poison" not in scored
    [letter] = consume_all(stream_settings, stream_settings.topic_dlq, expected=2, timeout_s=10)
    assert letter.value == value
    reason = dict(letter.headers)["fraud-dlq-reason"].decode()
    assert reason.startswith("amount") and "1e+39" in reason, reason
    assert paused_seen and max(paused_seen) == 0.0, worker.log_tail()
