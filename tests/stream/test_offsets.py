"""Offsets move only past records with an outcome: a graceful stop commits them, a stop mid-batch does not.

Real broker, predictor, Feast store and `python -m stream_scorer` processes.
"""

from __future__ import annotations

import httpx

from fraud.events import Score, decode
from fraud.settings import Settings
from fraud.topics import committed_offsets, end_offsets
from producers.publisher import publish
from producers.sources import SyntheticSource
from tests.integration.test_roundtrip import consume_all
from tests.predictor.conftest import Predictor
from tests.stream.conftest import Worker, put_profiles


def _scored_ids(settings: Settings, expected: int) -> set[str]:
    return {decode(m.value, Score).transaction_id
            for m in consume_all(settings, settings.topic_scores, expected=expected, timeout_s=30)}


def test_a_graceful_stop_commits_every_scored_record(stream_settings: Settings, predictor: Predictor) -> None:
    put_profiles(stream_settings, {f"user_{i}": (48.0, 11.0, 20.0) for i in range(50)})
    worker = Worker(stream_settings)
    publish(SyntheticSource(2_000, users=50, seed=21), stream_settings, topic=stream_settings.topic_transactions)
    worker.wait_for(lambda m: m["fraud_scorer_scores_out_total"] >= 2_000, "2,000 scores")
    worker.stop()
    assert worker.process.returncode == 0, worker.log_tail()
    ends = end_offsets(stream_settings, stream_settings.topic_transactions)
    committed = committed_offsets(stream_settings, stream_settings.scorer_app_id, stream_settings.topic_transactions)
    assert committed == {p: end for p, end in ends.items() if end > 0}, worker.log_tail()


def test_a_stop_while_a_batch_waits_for_the_predictor_commits_nothing_past_it(
    stream_settings: Settings, predictor: Predictor
) -> None:
    before = committed_offsets(stream_settings, stream_settings.scorer_app_id, stream_settings.topic_transactions)
    worker = Worker(stream_settings)
    worker.wait_for(lambda m: m["fraud_scorer_ready"] == 1, "table recovery")
    predictor.stop()
    publish(SyntheticSource(300, users=50, seed=22), stream_settings, topic=stream_settings.topic_transactions)
    worker.wait_for(lambda m: m["fraud_scorer_consumption_paused"] == 1, "a pause for the predictor")
    worker.stop()  # SIGTERM while the batch is retrying: Faust acks the batch in a `finally`; it must not commit
    assert worker.process.returncode == 0, worker.log_tail()
    after = committed_offsets(stream_settings, stream_settings.scorer_app_id, stream_settings.topic_transactions)
    assert after == before, worker.log_tail()

    revived = Predictor(stream_settings)
    try:
        assert httpx.get(f"{revived.url}/v2/health/ready", timeout=30).status_code in (200, 503)
        again = Worker(stream_settings)
        try:
            again.wait_for(lambda m: m["fraud_scorer_scores_out_total"] >= 300, "the held-back batch scored")
        finally:
            again.stop()
        assert len(_scored_ids(stream_settings, 2_301)) == 2_300
    finally:
        predictor.process, predictor.log = revived.process, revived.log  # the fixture stops whichever runs last
