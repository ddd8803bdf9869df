"""The stream scorer's logic without Kafka: BatchScorer with stand-ins, and the Faust agent in test_context()."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from faust.types import TP

from fraud.events import Score, Transaction, decode, encode
from fraud.features import FEATURE_NAMES, UserProfile
from fraud.settings import Settings
from stream_scorer.batch import Record, latest_per_user, non_finite_rows
from stream_scorer.faults import TransientFault
from stream_scorer.feast_io import CoalescingPusher, ProfileCache, activity_frame
from stream_scorer.metrics import ScorerMetrics
from stream_scorer.predictor_client import PredictorClient
from stream_scorer.scorer import BatchScorer, DictStates, _may_hold_redeliveries
from tests.conftest import make_transaction


class FakePredictor:
    """An httpx transport answering V2 binary requests with sum(row)/1000 as the score, failing the first ``down`` calls."""

    def __init__(self, down: int = 0) -> None:
        self.down, self.calls, self.rows = down, 0, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # model metadata
            return httpx.Response(200, json={"inputs": [{"parameters": {"feature_names": list(FEATURE_NAMES)}}]})
        self.calls += 1
        if self.calls <= self.down:
            return httpx.Response(503, text="model fraud-detection is not loaded yet")
        length = int(request.headers["inference-header-content-length"])
        header = orjson.loads(request.content[:length])
        rows = np.frombuffer(request.content[length:], dtype=np.float32).reshape(header["inputs"][0]["shape"])
        self.rows.append(rows)
        scores = (rows.sum(axis=1) / 1000).clip(0, 1).astype(np.float32)
        body = orjson.dumps({"model_name": "fraud-detection", "model_version": "7", "parameters": {"threshold": 0.5},
                             "outputs": [{"name": "score", "datatype": "FP32", "shape": [len(rows), 1],
                                          "parameters": {"binary_data_size": scores.nbytes}}]})
        return httpx.Response(200, content=body + scores.tobytes(), headers={"Inference-Header-Content-Length": str(len(body))})


class Harness:
    """A BatchScorer whose sends, Feast and predictor are in-memory stand-ins."""

    def __init__(self, down: int = 0, push_fails: bool = False) -> None:
        self.settings = Settings(_env_file=None, predictor_retries=2, predictor_backoff_max_s=0.01)
        self.fake = FakePredictor(down)
        self.state = DictStates()
        self.sent_scores, self.sent_dead, self.pushed, self.profile_reads = [], [], [], []
        self.push_fails = push_fails

        async def read(users: list[str]) -> dict[str, UserProfile]:
            self.profile_reads.append(list(users))
            return {u: UserProfile(48.0, 11.0, 20.0) for u in users if u != "user_6"}  # user_6 is a new card

        async def push(parts) -> None:
            if self.push_fails:
                raise RuntimeError("database is locked")
            self.pushed.append(activity_frame(parts))

        async def send_scores(messages) -> None:
            self.sent_scores.extend(messages)

        async def send_dead(messages) -> None:
            self.sent_dead.extend(messages)

        client = PredictorClient("http://predictor", "fraud-detection", 1.0, transport=httpx.MockTransport(self.fake))
        self.metrics = ScorerMetrics()
        self.start = self.samples()
        def push_failed(error: Exception, users: int) -> None:
            self.metrics.feast_push_failures.inc()

        self.scorer = BatchScorer(self.settings, self.state, ProfileCache(read, ttl_s=60), CoalescingPusher(push, push_failed),
                                  client, send_scores, send_dead, self.metrics)

    def samples(self) -> dict[str, float]:
        return {sample.name + "".join(f"[{v}]" for v in sample.labels.values()): sample.value
                for metric in self.metrics.registry.collect() for sample in metric.samples}

    def count(self, name: str) -> float:
        """How much a metric sample grew since this harness was made.

        Deltas, because once Feast is imported (by other tests) prometheus_client runs in multiprocess
        mode, where same-named metrics of one process share their values.
        """
        return self.samples()[name] - self.start.get(name, 0.0)

    def run(self, records: list[Record]):
        async def batch_then_push():
            outcome = await self.scorer.process(records)
            await self.scorer.pusher.flush()
            return outcome

        return asyncio.run(batch_then_push())


def record(value: bytes, offset: int = 0, key: bytes | None = None) -> Record:
    return Record(key, value, [], "transactions", 0, offset, 1_700_000_000.0)


def good(number: int, **changes: object) -> Record:
    key, value, _ = encode(make_transaction(number, **changes), "tests")
    return record(value, number, key)


def test_a_batch_is_scored_in_order_with_its_features_and_the_state_moves_on() -> None:
    harness = Harness()
    outcome = harness.run([good(n, amount=10.0 + n) for n in range(14)])  # users 0..6, two events each
    assert [s.transaction_id for s in outcome.scores] == [f"tx-test-{n}" for n in range(14)]
    published = [decode(value, Score) for _, value, _ in harness.sent_scores]  # validates every field
    assert published == outcome.scores
    first, second = published[0], published[7]  # user_0's two events
    assert (first.features["history_count"], second.features["history_count"]) == (0.0, 1.0)
    assert second.features["history_mean_amount"] == 10.0
    assert first.model_version == "7" and first.threshold == 0.5
    expected = np.float32(harness.fake.rows[0][7].sum()) / np.float32(1000)
    assert second.score == pytest.approx(float(expected), rel=1e-6)
    assert harness.state["user_0"]["count"] == 2
    assert len(harness.fake.rows) == 1 and harness.fake.rows[0].shape == (14, len(FEATURE_NAMES))  # one call per batch
    assert len(harness.pushed) == 1 and sorted(harness.pushed[0]["user_id"]) == [f"user_{n}" for n in range(7)]
    # user_6 has no Feast profile: its first transaction stands in (distance from home 0, ratio 1).
    user_6 = published[6]
    assert user_6.features["distance_from_home"] == 0.0 and user_6.features["ratio_to_median_purchase_price"] == 1.0


def test_profiles_are_read_once_per_user_within_the_ttl() -> None:
    harness = Harness()
    harness.run([good(n) for n in range(7)])
    harness.run([good(n + 7) for n in range(7)])
    assert harness.profile_reads == [[f"user_{n}" for n in range(7)]]


def test_bad_records_go_to_the_dead_letters_with_reasons_and_the_rest_is_scored() -> None:
    harness = Harness()
    _, valid_value, _ = encode(make_transaction(1), "tests")
    negative = orjson.loads(valid_value)
    negative["data"]["amount"] = -3.0
    records = [good(0), record(b"{oops", 1), record(orjson.dumps(negative), 2), good(3),
               record(valid_value, 4, key=b"user_999")]
    outcome = harness.run(records)
    assert [s.transaction_id for s in outcome.scores] == ["tx-test-0", "tx-test-3"]
    reasons = [dict(headers)["fraud-dlq-reason"].decode() for _, _, headers in harness.sent_dead]
    assert reasons[0].startswith("not a JSON CloudEvent")
    assert reasons[1].startswith("amount: Input should be greater than or equal to 0")
    assert "is not the user_id" in reasons[2]
    assert [value for _, value, _ in harness.sent_dead] == [b"{oops", orjson.dumps(negative), valid_value]
    assert harness.count("fraud_scorer_dead_letters_total") == 3


def test_a_sick_predictor_is_retried_then_consumption_pauses_until_it_answers() -> None:
    harness = Harness(down=5)  # retries=2: the third failure pauses, the sixth call succeeds
    outcome = harness.run([good(n) for n in range(3)])
    assert len(outcome.scores) == 3 and harness.fake.calls == 6
    assert harness.samples()["fraud_scorer_waiting_for[predictor]"] == 0  # it waited, and no longer does
    assert harness.count("fraud_scorer_predictor_failures_total") == 5
    assert harness.samples()["fraud_scorer_consumption_paused"] == 0


def test_a_batch_without_an_answer_publishes_nothing_and_changes_no_state() -> None:
    harness = Harness(down=10**9)

    async def bounded() -> None:
        await asyncio.wait_for(harness.scorer.process([good(0)]), timeout=0.5)

    with pytest.raises(TimeoutError):
        asyncio.run(bounded())
    assert harness.sent_scores == [] and harness.state == {}
    assert harness.samples()["fraud_scorer_waiting_for[predictor]"] == 1
    assert harness.samples()["fraud_scorer_consumption_paused"] == 1


def test_a_failed_feast_push_does_not_hold_the_scores_back() -> None:
    harness = Harness(push_fails=True)
    assert len(harness.run([good(0), good(1)]).scores) == 2
    assert harness.count("fraud_scorer_feast_push_failures_total") == 1


class GatedPush:
    """A Feast push that waits until ``gate`` opens (made inside the test's event loop), then records its parts."""

    def __init__(self) -> None:
        self.pushed: list[list[dict]] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, parts: list[dict]) -> None:
        await self.gate.wait()
        self.pushed.append(parts)

    def pusher(self, **options: object) -> CoalescingPusher:
        """A pusher through this push, its first submit held at the gate."""
        self.gate = asyncio.Event()
        return CoalescingPusher(self, **options)


def test_pushes_never_overlap_and_batches_that_wait_go_together() -> None:
    push = GatedPush()

    async def scenario() -> None:
        pusher = push.pusher()
        pusher.submit({"user_id": ["user_1"]})
        await asyncio.sleep(0)  # the first push starts and waits
        pusher.submit({"user_id": ["user_2"]})
        pusher.submit({"user_id": ["user_3"]})
        push.gate.set()
        await pusher.flush()

    asyncio.run(scenario())
    assert push.pushed == [[{"user_id": ["user_1"]}], [{"user_id": ["user_2"]}, {"user_id": ["user_3"]}]]


def test_a_push_is_followed_by_a_pause_that_keeps_the_push_process_to_its_share_of_the_time() -> None:
    starts: list[float] = []

    async def push(parts) -> None:
        starts.append(time.monotonic())
        await asyncio.sleep(0.1)

    async def scenario() -> None:
        pusher = CoalescingPusher(push, busy_fraction=0.25)
        pusher.submit({"user_id": ["user_1"]})
        await asyncio.sleep(0)
        pusher.submit({"user_id": ["user_2"]})  # waits: the first push took 0.1 s, so the next starts 0.4 s after it
        await pusher.flush()

    asyncio.run(scenario())
    assert len(starts) == 2
    assert starts[1] - starts[0] >= 0.4


def test_rows_beyond_the_pending_bound_are_dropped_oldest_first_and_counted() -> None:
    push, dropped = GatedPush(), []

    async def scenario() -> None:
        pusher = push.pusher(max_pending_rows=3, on_dropped=dropped.append)
        pusher.submit({"user_id": ["user_1"]})
        await asyncio.sleep(0)  # being pushed: no longer pending
        for batch in (["user_2", "user_3"], ["user_4"], ["user_5", "user_6"]):
            pusher.submit({"user_id": batch})
        push.gate.set()
        await pusher.flush()

    asyncio.run(scenario())
    assert dropped == [2]  # user_2 and user_3's batch, the oldest waiting, when the third batch came
    assert push.pushed == [[{"user_id": ["user_1"]}], [{"user_id": ["user_4"]}, {"user_id": ["user_5", "user_6"]}]]


def test_the_pushed_frame_keeps_each_users_latest_row() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    transactions = [make_transaction(0, user_id="user_1", event_time=when), make_transaction(1, user_id="user_2"),
                    make_transaction(2, user_id="user_2", event_time=when)]
    parts = [latest_per_user(transactions[:2], {name: np.array([1.0, 2.0]) for name in FEATURE_NAMES}),
             latest_per_user(transactions[2:], {name: np.array([3.0]) for name in FEATURE_NAMES})]
    frame = activity_frame(parts)
    assert frame[["user_id", "transaction_id", "amount"]].to_dict("records") == [
        {"user_id": "user_1", "transaction_id": "tx-test-0", "amount": 1.0},
        {"user_id": "user_2", "transaction_id": "tx-test-2", "amount": 3.0}]
    assert frame["event_timestamp"].tolist() == [pd.Timestamp(when), pd.Timestamp(when)]  # to the microsecond, in UTC


def test_the_faust_agent_scores_what_the_consumer_fetched_in_batches_and_acks_it(tmp_path) -> None:
    """The real agent of `build_app`, driven by Faust's test_context (no broker), with the harness's stand-ins.

    The consumer's fetches are put in the app's input buffer as `BulkInputConsumer` puts them.
    """
    from stream_scorer.app import build_app
    from stream_scorer.bulk_input import Fetched

    harness = Harness()
    settings = Settings(_env_file=None, data_dir=tmp_path, scorer_batch_size=4, topic_transactions="tx-in")
    scorer_app = build_app(settings, metrics=harness.metrics)
    app, scorer = scorer_app.app, scorer_app.scorer
    scorer.state, scorer.profiles, scorer.pusher = harness.state, harness.scorer.profiles, harness.scorer.pusher
    scorer.predictor, scorer.send_scores = harness.scorer.predictor, harness.scorer.send_scores
    scorer.send_dead_letters = harness.scorer.send_dead_letters
    values = [encode(make_transaction(n), "tests") for n in range(10)]
    fetches = [[Record(key, value, [], "tx-in", 0, offset, 0.0) for offset, (key, value, _) in enumerate(values[:6])],
               [Record(key, value, [], "tx-in", 0, offset + 6, 0.0) for offset, (key, value, _) in enumerate(values[6:])]
               + [Record(b"user_1", b"not an event", [], "tx-in", 0, 10, 0.0)]]
    consumer = app.consumer

    async def drive() -> None:
        async with scorer_app.agent.test_context():
            for records in fetches:
                await app.inputs.put(Fetched(app.consumer_generation_id, records))
            for _ in range(100):
                if len(harness.sent_scores) == 10 and harness.sent_dead and not app.inputs.size:
                    break
                await asyncio.sleep(0.05)
            await app.inputs.wait_idle()

    asyncio.run(drive())
    assert sorted(decode(v, Score).transaction_id for _, v, _ in harness.sent_scores) == sorted(f"tx-test-{n}" for n in range(10))
    assert [v for _, v, _ in harness.sent_dead] == [b"not an event"]
    assert harness.count("fraud_scorer_batch_size_count") >= 3  # 11 records in batches of at most 4
    assert harness.count("fraud_scorer_batch_size_sum") == 11
    assert sorted(consumer._acked[TP("tx-in", 0)]) == list(range(11))  # every offset acked, once, after its outcome


def test_a_seek_refused_because_a_rebalance_took_the_partitions_does_not_stop_the_fetch_loop(tmp_path) -> None:
    """A rebalance stopped the flow under a fetch: the consumer rewinds to the committed offsets. If the partitions
    are gone meanwhile, aiokafka refuses the seek (it crashed a worker in the chaos rebalance run); the loop goes on."""
    from aiokafka.errors import IllegalStateError

    from stream_scorer.app import build_app

    consumer = build_app(Settings(_env_file=None, data_dir=tmp_path, topic_transactions="tx-in")).app.consumer
    seeks: list[str] = []

    async def seek_refused() -> None:
        seeks.append("tried")
        raise IllegalStateError("No current assignment for partition TopicPartition(topic='tx-in', partition=0)")

    consumer.perform_seek = seek_refused
    asyncio.run(consumer._seek_to_committed())
    assert seeks == ["tried"]


def test_redelivered_records_whose_scores_are_out_are_skipped() -> None:
    harness = Harness()
    batch = [good(n) for n in range(5)]
    assert len(harness.run(batch).scores) == 5
    again = harness.run([*batch, good(5)])  # Kafka redelivers an uncommitted batch, plus one new record
    assert [s.transaction_id for s in again.scores] == ["tx-test-5"]
    assert harness.count("fraud_scorer_redelivered_skipped_total") == 5
    assert harness.state["user_0"]["count"] == 1  # history counted once


def test_an_answer_with_a_threshold_that_is_no_probability_is_not_used() -> None:
    harness = Harness()
    real = harness.fake.__call__

    def bad_threshold(request: httpx.Request) -> httpx.Response:
        answer = real(request)
        if request.method == "POST" and harness.fake.calls == 1:
            length = int(answer.headers["inference-header-content-length"])
            header = orjson.loads(answer.content[:length])
            header["parameters"]["threshold"] = 1.5
            body = orjson.dumps(header)
            return httpx.Response(200, content=body + answer.content[length:],
                                  headers={"Inference-Header-Content-Length": str(len(body))})
        return answer

    harness.scorer.predictor._client._transport = httpx.MockTransport(bad_threshold)
    outcome = harness.run([good(0)])
    assert harness.fake.calls == 2 and outcome.scores[0].threshold == 0.5  # the first answer was retried
    assert harness.count("fraud_scorer_predictor_failures_total") == 1


def refuse_large_amounts(fake: FakePredictor):
    """A predictor that answers 400 for any request holding a row whose amount (column 0) is over 1,000."""
    real = fake.__call__

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            length = int(request.headers["inference-header-content-length"])
            rows = np.frombuffer(request.content[length:], dtype=np.float32).reshape(-1, len(FEATURE_NAMES))
            if (rows[:, 0] > 1000).any():
                fake.calls += 1
                return httpx.Response(400, json={"error": f"amount {rows[rows[:, 0] > 1000][0, 0]:.0f} is too large"})
        return real(request)

    return httpx.MockTransport(answer)


def test_rows_the_predictor_refuses_are_dead_lettered_and_the_rest_is_scored_without_a_pause() -> None:
    harness = Harness()
    harness.scorer.predictor._client._transport = refuse_large_amounts(harness.fake)
    records = [good(n, amount=5000.0 if n in (3, 9) else 10.0) for n in range(12)]
    outcome = harness.run(records)
    assert [s.transaction_id for s in outcome.scores] == [f"tx-test-{n}" for n in range(12) if n not in (3, 9)]
    reasons = {decode(value, Transaction).transaction_id: dict(headers)["fraud-dlq-reason"].decode()
               for _, value, headers in harness.sent_dead}
    assert reasons == {"tx-test-3": "the predictor refused it: HTTP 400: amount 5000 is too large",
                       "tx-test-9": "the predictor refused it: HTTP 400: amount 5000 is too large"}
    assert "fraud_scorer_waiting_for[predictor]" not in harness.samples()
    assert harness.count("fraud_scorer_rows_refused_total") == 2
    assert harness.count("fraud_scorer_predictor_failures_total") == 0
    # A refused transaction is no part of its user's history: user_3 saw only tx-test-10.
    assert harness.state["user_3"]["count"] == 1


def test_a_record_that_makes_scoring_raise_is_isolated_and_dead_lettered_with_the_exception() -> None:
    harness = Harness()
    read = harness.scorer.profiles._read

    async def broken_for_user_4(users: list[str]) -> dict[str, UserProfile]:
        if "user_4" in users:
            raise ValueError("profile of user_4 is corrupt")
        return await read(users)

    harness.scorer.profiles._read = broken_for_user_4

    async def settle() -> None:
        await harness.scorer.settle([good(n) for n in range(14)])

    asyncio.run(settle())
    scored = sorted(decode(value, Score).transaction_id for _, value, _ in harness.sent_scores)
    assert scored == sorted(f"tx-test-{n}" for n in range(14) if n % 7 != 4)
    dead = {decode(value, Transaction).transaction_id: dict(headers)["fraud-dlq-reason"].decode()
            for _, value, headers in harness.sent_dead}
    assert dead == {"tx-test-4": "ValueError: profile of user_4 is corrupt",
                    "tx-test-11": "ValueError: profile of user_4 is corrupt"}
    assert harness.count("fraud_scorer_unexpected_errors_total") == 2
    assert harness.count("fraud_scorer_events_in_total") == 14  # counted once, however often the batch was split


def test_transient_faults_of_feast_and_kafka_are_retried_in_place_and_pause_while_they_last() -> None:
    harness = Harness()
    failures = {"feast": 3, "scores": 1, "state": 1}
    read, send_scores, save = harness.scorer.profiles._read, harness.scorer.send_scores, harness.state.save

    def flaky(name: str, dependency: str, operation):
        async def call(*args):
            if failures[name] > 0:
                failures[name] -= 1
                raise TransientFault(dependency, f"{name} unavailable")
            return await operation(*args)
        return call

    harness.scorer.profiles._read = flaky("feast", "feast", read)
    harness.scorer.send_scores = flaky("scores", "kafka", send_scores)
    harness.state.save = flaky("state", "kafka", save)
    outcome = harness.run([good(n) for n in range(3)])
    assert len(outcome.scores) == 3 and harness.sent_dead == []
    assert len(harness.sent_scores) == 3  # the failed send sent nothing; the retry sent each score once
    assert harness.state["user_0"]["count"] == 1
    # retries=2: the third Feast failure made the worker wait for Feast; the sends' single failures did not
    assert harness.samples()["fraud_scorer_waiting_for[feast]"] == 0
    assert "fraud_scorer_waiting_for[kafka]" not in harness.samples()
    assert harness.count("fraud_scorer_dependency_failures_total[feast]") == 3
    assert harness.count("fraud_scorer_dependency_failures_total[kafka]") == 2
    assert harness.samples()["fraud_scorer_consumption_paused"] == 0


def test_non_finite_features_are_found_before_the_predictor_is_asked() -> None:
    features = {name: np.zeros(3) for name in FEATURE_NAMES}
    features["amount"] = np.array([1.0, 1e39, 2.0])
    features["history_std_amount"] = np.array([np.nan, 0.0, 0.0])
    assert non_finite_rows(features, list(FEATURE_NAMES)) == {
        0: "feature history_std_amount is nan: not a finite float32",
        1: "feature amount is 1e+39: not a finite float32"}


def test_a_record_that_comes_twice_in_one_batch_is_scored_once() -> None:
    """After a rebalance Faust redelivers from the committed offset while the old events still wait in the buffer."""
    harness = Harness()
    batch = [good(n) for n in range(3)]
    outcome = harness.run([*batch, *batch])
    assert [s.transaction_id for s in outcome.scores] == ["tx-test-0", "tx-test-1", "tx-test-2"]
    assert outcome.scores[0].features["history_count"] == 0.0
    assert harness.state["user_0"]["count"] == 1


def _features_by_id(messages) -> dict[str, dict]:
    return {score.transaction_id: score.features for score in (decode(v, Score) for _, v, _ in messages)}


def _two_batches() -> tuple[list[Record], list[Record]]:
    """Seven users each in both batches, amounts varying, so the second batch's features depend on the first's state."""
    first = [good(n, amount=10.0 + n) for n in range(14)]
    second = [good(n, amount=30.0 + n) for n in range(14, 28)]
    return first, second


def _overlapped(harness: Harness, first: list[Record], second: list[Record]) -> None:
    """The agent's order: prepare the second batch while the first publishes, then publish the second."""
    scorer = harness.scorer

    async def run() -> None:
        prepared_first = await scorer.prepare_overlapped(first)
        publishing = asyncio.ensure_future(scorer.publish_prepared(prepared_first, first))
        prepared_second = await scorer.prepare_overlapped(second)
        await publishing
        await scorer.publish_prepared(prepared_second, second)

    asyncio.run(run())


def test_a_batch_prepared_while_the_one_before_publishes_scores_as_if_one_after_the_other() -> None:
    first, second = _two_batches()
    sequential, overlapped = Harness(), Harness()
    sequential.run(first)
    sequential.run(second)
    _overlapped(overlapped, first, second)
    assert _features_by_id(overlapped.sent_scores) == _features_by_id(sequential.sent_scores)
    assert len(overlapped.sent_scores) == 28
    assert dict(overlapped.state) == dict(sequential.state) and overlapped.scorer.unsaved == {}


def _refusing_to_send(harness: Harness, transaction_id: str) -> None:
    """The harness's score sender raises (a bug, not an outage) for any batch holding ``transaction_id``."""
    sends = harness.scorer.send_scores

    async def send(messages) -> None:
        if any(decode(v, Score).transaction_id == transaction_id for _, v, _ in messages):
            raise RuntimeError(f"a bug in the send path, hit by {transaction_id}")
        await sends(messages)

    harness.scorer.send_scores = send


def test_when_a_publish_fails_the_next_batch_prepared_on_its_states_is_settled_again_and_nothing_is_lost() -> None:
    first, second = _two_batches()
    sequential, overlapped = Harness(), Harness()
    for harness in (sequential, overlapped):
        _refusing_to_send(harness, "tx-test-3")  # its batch is split until it is alone, and dead-lettered
    asyncio.run(sequential.scorer.settle(first))
    asyncio.run(sequential.scorer.settle(second))
    _overlapped(overlapped, first, second)
    # The second batch was prepared on user_3's state with tx-test-3 in it; published as prepared, its
    # features would count a transaction that only has a dead letter.
    assert _features_by_id(overlapped.sent_scores) == _features_by_id(sequential.sent_scores)
    assert len(overlapped.sent_scores) == 27 and len(overlapped.sent_dead) == 1
    assert dict(overlapped.state) == dict(sequential.state) and overlapped.scorer.unsaved == {}


def test_the_batch_wide_redelivery_check_looks_at_each_partition() -> None:
    """`_may_hold_redeliveries` lets a batch skip the per-record check only when no record can need it."""
    def at(partition: int, offset: int) -> Record:
        return Record(None, b"{}", [], "tx-in", partition, offset, 0.0)

    reached = [[0, 9], [2, 4], [0, 3]]  # the positions the batch's users' states reached
    assert not _may_hold_redeliveries([at(0, 10), at(2, 5), at(1, 0)], reached)
    assert _may_hold_redeliveries([at(0, 10), at(2, 4)], reached)  # partition 2 starts at a position reached
    assert _may_hold_redeliveries([at(0, 9), at(2, 5)], reached)
    assert _may_hold_redeliveries([at(1, 3), at(1, 3)], [])  # the same record twice
    assert not _may_hold_redeliveries([at(1, 3), at(0, 3)], [])
