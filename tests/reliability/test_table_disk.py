"""A worker restarted with its table on disk (RocksDB) recovers it from the disk plus the changelog's tail.

Worker A scores a first round and stops. Worker B (another group instance, its own
empty disk) takes the partitions over, fills its disk from the whole changelog in bulk
(`stream_scorer.table_fill`: Faust's recovery then replays nothing), and scores a
second round for some of the users, so A's disk is now stale. A comes back with its
disk: Faust must replay only what B wrote since A's persisted offsets (fewer records
than the table holds, counted from Faust's own recovery log), and A's table must then
equal the changelog, key for key: what a rebalance that hands a partition back needs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import rocksdict

from benchmarks.chaos_stack import ChaosStack, Run
from benchmarks.recovery import replayed_records
from fraud.events import encode
from fraud.local_stack.process import free_port
from fraud.local_stack.worker import LocalWorker
from fraud.topics import TopicTail
from producers.publisher import make_producer
from stream_scorer.app import STATE_TABLE, table_dir
from stream_scorer.seed import changelog_topic
from tests.conftest import make_transaction

USERS = 300
TAIL_USERS = 40


def test_a_worker_restarted_with_its_disk_replays_only_the_changelog_tail_and_its_table_equals_the_changelog(
        chaos_stack: ChaosStack) -> None:
    run = Run(chaos_stack, "disk")
    settings = run.settings.model_copy(update={"scorer_table_store": "rocksdb"})
    first = [make_transaction(n, transaction_id=f"first-{n}", user_id=f"user_{n % USERS}",
                              event_time=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n)) for n in range(2 * USERS)]
    second = [make_transaction(n, transaction_id=f"second-{n}", user_id=f"user_{n}",
                               event_time=datetime(2026, 1, 2, tzinfo=UTC) + timedelta(minutes=n)) for n in range(TAIL_USERS)]
    probe = make_transaction(1, transaction_id="probe", user_id="user_1", event_time=datetime(2026, 1, 3, tzinfo=UTC))
    a, b = _worker(settings, "disk-a", run), _worker(settings, "disk-b", run)
    try:
        _score(run, a, first)
        a.stop()
        _score(run, b, second)  # B's first start: its empty disk filled from the whole changelog
        b.stop()
        b_replayed = replayed_records(b.files.log_file.read_text(errors="replace"))
        b_changelog = _latest_per_key(settings)
        log_start = a.files.log_file.stat().st_size
        _score(run, a, [probe])
        a.stop()
        changelog = _latest_per_key(settings)
    finally:
        for worker in (a, b):
            worker.stop()
        run.close()

    with a.files.log_file.open("rb") as log:
        log.seek(log_start)
        replayed = replayed_records(log.read().decode(errors="replace"))
    # B filled its empty disk in bulk before Faust's recovery, which then had nothing left to replay
    assert "empty table directory: " in b.files.log_file.read_text(errors="replace")
    assert b_replayed == 0
    assert _table_on_disk(b.settings, chaos_stack.settings.partitions_transactions) == b_changelog
    on_disk = _table_on_disk(a.settings, chaos_stack.settings.partitions_transactions)
    assert len(on_disk) == USERS
    # B's states for its users (and the probe's), not the whole table: the disk held the rest
    assert TAIL_USERS <= replayed < USERS, replayed
    assert on_disk == changelog  # the disk plus the tail is the changelog, key for key
    probe_score = next(score for score in run.outcomes.scores if score["transaction_id"] == "probe")
    assert probe_score["features"]["history_count"] == 3.0  # user_1: two in the first round, one in the second


def _worker(settings, instance: str, run: Run) -> LocalWorker:
    own = settings.model_copy(update={"scorer_group_instance_id": instance, "scorer_metrics_port": free_port()})
    return LocalWorker(own, name=instance, env=run.worker_env)


def _score(run: Run, worker: LocalWorker, transactions: list) -> None:
    """Publish ``transactions``, start ``worker`` and wait until all of them are scored."""
    producer = make_producer(run.settings)
    for transaction in transactions:
        key, value, headers = encode(transaction, "tests.disk")
        producer.send(run.settings.topic_transactions, key=key, value=value, headers=headers)
    producer.flush()
    producer.close()
    worker.start()
    # a stopped static member keeps its partitions until its session times out (10 s here): allow for that
    assert run.wait_for_outcomes({t.transaction_id for t in transactions}, patience_s=60), worker.files.log_tail()


def _table_on_disk(settings, partitions: int) -> dict[bytes, dict]:
    """Every state in the worker's RocksDB table (Faust's offset key aside), read after it stopped."""
    states = {}
    for partition in range(partitions):
        path = table_dir(settings) / f"{STATE_TABLE}-{partition}.db"
        db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True),
                             access_type=rocksdict.AccessType.read_only())
        try:
            states |= {key: orjson.loads(value) for key, value in db.items() if not key.startswith(b"__faust")}
        finally:
            db.close()
    return states


def _latest_per_key(settings) -> dict[bytes, dict]:
    """Each key's last state in the table's changelog topic."""
    return {record.key: orjson.loads(record.value) for record in TopicTail(settings, changelog_topic(settings)).read_new()}
