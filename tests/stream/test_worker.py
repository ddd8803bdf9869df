"""The stream scorer end to end: real broker, real predictor, real Feast store, real Faust worker processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fraud.events import Score, decode
from fraud.settings import Settings
from producers.publisher import publish
from producers.sources import SyntheticSource
from tests.integration.test_roundtrip import consume_all
from tests.predictor.conftest import Predictor
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
