"""The Faust app: topics, the changelog-backed user table, and the agent that feeds `BatchScorer`.

`build_app(settings)` returns a fresh app, so tests and the benchmark can run
several side by side; `python -m stream_scorer` / `fraud worker` run one.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import faust
import orjson
import rocksdict
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from faust.exceptions import ConsumerNotStarted

from fraud.events import KafkaRecord
from fraud.settings import Settings
from fraud.topics import ssl_context
from stream_scorer.backpressure import Abandoned
from stream_scorer.batch import Record
from stream_scorer.bulk_input import BulkInputConsumer, InputBuffer
from stream_scorer.faults import TransientFault
from stream_scorer.feast_io import CoalescingPusher, FeastGateway, ProfileCache
from stream_scorer.metrics import ScorerMetrics
from stream_scorer.offsets import Delivery, Hole, OffsetGuard, in_offset_order, read_holes
from stream_scorer.predictor_client import PredictorClient
from stream_scorer.recent_states import RecentStates
from stream_scorer.scorer import BatchScorer, Prepared
from stream_scorer.table_disk import changelog_topic_id, remember
from stream_scorer.table_fill import fill_empty_table

log = logging.getLogger(__name__)
STATE_TABLE = "user-activity"


@dataclass
class ScorerApp:
    """A Faust app with its agent, and the pieces a test or the runner may want to reach."""

    app: faust.App
    agent: faust.types.AgentT
    scorer: BatchScorer
    metrics: ScorerMetrics


_PARTITIONER = DefaultPartitioner()
# Allocations between two young collections of the cyclic collector (Python's default: 700). A batch of
# 2,000 events allocates several objects per event (records, transactions, states, messages), nearly none
# in cycles, and at 700 the collector ran every few hundred events, each run also walking the survivors of
# the runs before: at the default, a batch's features took 2-3 times longer (README "Stream benchmark").
# The price: a young collection walks every object still alive since the last, chiefly users' states, which
# live until their user's next transaction; on a slow machine each held the worker 120-200 ms, every 10 s at
# 1,000 events/s. At 10,000 they took 25-65 ms, but the worker drained 4-12% fewer events/s (two interleaved
# pairs) and p99 at 1,000 events/s did not measurably change (README "Latency at low rates").
YOUNG_COLLECTION_EVERY = 50_000


@functools.lru_cache(maxsize=1 << 18)
def _hash_index(key: bytes, count: int) -> int:
    """The producers' partition index of ``key`` (murmur2, as Java and kafka-python hash it), remembered.

    aiokafka's murmur2 is pure Python, and each event's key was hashed three times (its score,
    its user's state on send, and on read); keys are users, who come back.
    """
    return _PARTITIONER(key, range(count), range(count))


def partition_for(key: bytes | None, partitions: Sequence[int]) -> int:
    """The partition, of ``partitions`` (sorted), a producer sends ``key`` to; a random one for no key."""
    if key is None:
        return _PARTITIONER(key, partitions, partitions)
    return partitions[_hash_index(key, len(partitions))]


@dataclass(frozen=True)
class SentBatch:
    """One producer batch on its way to a partition: its messages and the future of its delivery."""

    partition: int
    messages: list[KafkaRecord]
    delivery: asyncio.Future  # resolves to aiokafka's RecordMetadata, whose offset is the batch's first

    def last_offset(self) -> int:
        """The offset Kafka gave the batch's last message (once delivered)."""
        return self.delivery.result().offset + len(self.messages) - 1


async def send_batches(app: faust.App, topic: str, messages: Sequence[KafkaRecord]) -> list[asyncio.Future]:
    """Queue ``messages`` on ``app``'s producer a partition batch at a time; return the batches' delivery futures."""
    return [batch.delivery for batch in await send_partition_batches(app, topic, messages)]


async def send_partition_batches(app: faust.App, topic: str, messages: Sequence[KafkaRecord]) -> list[SentBatch]:
    """Queue ``messages`` on ``app``'s producer a partition batch at a time; return the batches sent.

    Faust's `Topic.send` adds a buffer and a future per message, and even aiokafka's
    own `send` (metadata check, partitioner, future) cost more per message than the
    scoring. So messages are partitioned here, with the producers' partitioner
    (murmur2 of the key, as Java and kafka-python do), and appended to aiokafka
    batches. Faust exposes no batch API, hence its underlying aiokafka producer.
    """
    return await queue_partition_batches(app.producer._ensure_producer(), topic, messages)


async def queue_partition_batches(producer: AIOKafkaProducer, topic: str, messages: Sequence[KafkaRecord]) -> list[SentBatch]:
    """`send_partition_batches` on any aiokafka producer (the Faust app's, or a benchmark's own)."""
    partitions = sorted(await producer.partitions_for(topic))
    open_batches: dict[int, tuple[object, list[KafkaRecord]]] = {}
    sent = []
    for message in messages:
        key, value, headers = message
        partition = partition_for(key, partitions)
        batch, batch_messages = open_batches.get(partition, (None, []))
        if batch is None or batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            if batch is not None:  # full: send it and start the next one
                sent.append(SentBatch(partition, batch_messages,
                                      await producer.send_batch(batch, topic, partition=partition)))
            batch, batch_messages = open_batches[partition] = producer.create_batch(), []
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ValueError(f"a {len(value)}-byte message does not fit in an empty producer batch")
        batch_messages.append(message)
    for partition, (batch, batch_messages) in open_batches.items():
        sent.append(SentBatch(partition, batch_messages, await producer.send_batch(batch, topic, partition=partition)))
    return sent


def faust_broker_options(settings: Settings) -> dict:
    """Faust's spelling of the product's Kafka connection settings."""
    options: dict = {"broker": ";".join(f"kafka://{address}" for address in settings.kafka_bootstrap.split(","))}
    context = ssl_context(settings)
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
        options["broker_credentials"] = faust.SASLCredentials(
            username=settings.kafka_sasl_username, password=password, mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context)
    elif context is not None:
        options["broker_credentials"] = faust.SSLCredentials(context)
    return options


def build_app(settings: Settings, metrics: ScorerMetrics | None = None) -> ScorerApp:
    """The stream scorer for ``settings``: consume transactions, publish scores and dead letters."""
    metrics = metrics or ScorerMetrics()
    datadir = settings.data_dir / "worker" / settings.scorer_app_id
    datadir.mkdir(parents=True, exist_ok=True)
    on_disk = settings.scorer_table_store == "rocksdb"
    # Faust makes only the last level of its table directory (a memory store too), and opens its DBs in it
    table_dir(settings).mkdir(parents=True, exist_ok=True)
    app = ScorerFaustApp(
        settings.scorer_app_id,
        **faust_broker_options(settings),
        # rocksdb: one DB per changelog partition on disk, with the changelog offset it holds, so a restart replays
        # only the changelog's tail; memory: the table is rebuilt from its whole changelog on every start.
        store="rocksdb://" if on_disk else "memory://",
        datadir=str(datadir),
        tabledir=str(table_dir(settings)),
        topic_partitions=settings.partitions_transactions,
        topic_replication_factor=settings.topic_replication_factor,
        topic_allow_declare=True,  # Faust creates its changelog topic; ours exist already (`fraud stack up`)
        consumer_auto_offset_reset="earliest",  # a new worker scores what is already waiting
        web_enabled=False,  # metrics come from prometheus_client instead
        broker_client_id=settings.kafka_client_id,
        consumer_group_instance_id=settings.scorer_group_instance_id,
        producer_acks=-1,
        producer_linger_ms=0,  # a batch is sent in one burst; waiting for more only adds latency
        # aiokafka has one request in flight per broker, carrying one batch per partition: at its default 16 KiB a
        # batch's 2,000 scores (about 1 KB each) took some 20 round trips one after the other, 100-300 ms on two cores.
        producer_max_batch_size=settings.scorer_producer_batch_bytes,
    )
    transactions = app.topic(settings.topic_transactions, key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw", internal=False)
    # Keyed by user_id as raw bytes, partitioned like the input (use_partitioner: the changelog partition
    # comes from the key, as the producers' did), so a user's state sits on its transactions' partition.
    table = app.Table(STATE_TABLE, default=None, key_type=bytes, partitions=settings.partitions_transactions,
                      use_partitioner=True)

    async def send_and_wait(topic: str, messages: Sequence[KafkaRecord]) -> None:
        """Send and wait until Kafka acknowledged every one (acks=all): scores are out before state moves on."""
        await _acknowledged(send_partition_batches(app, topic, messages), topic)

    def input_partitions() -> set:
        try:
            assigned = app.consumer.assignment()
        except ConsumerNotStarted:  # agent.test_context() runs the agent without a consumer
            return set()
        return {tp for tp in assigned if tp.topic == settings.topic_transactions}

    feast = FeastGateway(settings)
    predictor = PredictorClient(settings.predictor_url, settings.model_name, settings.predictor_timeout_s)

    def push_failed(error: Exception, batches: int) -> None:
        metrics.feast_push_failures.inc()
        log.warning("Feast push of %d batches' users failed: %s", batches, error)

    scorer = app.scorer = BatchScorer(
        settings, RocksDBTableStates(table, app, settings.scorer_state_cache_users) if on_disk else TableStates(table, app),
        ProfileCache(feast.read_profiles, settings.profile_cache_ttl_s, max_users=settings.profile_cache_max_users),
        CoalescingPusher(feast.push, push_failed, settings.feast_push_interval_s, settings.feast_push_busy_fraction,
                         settings.feast_push_max_pending_rows, metrics.feast_rows_dropped.inc), predictor,
        send_scores=lambda messages: send_and_wait(settings.topic_scores, messages),
        send_dead_letters=lambda messages: send_and_wait(settings.topic_dlq, messages),
        metrics=metrics,
    )
    inputs = InputBuffer(settings.scorer_buffer_records)
    app.input_topic, app.inputs = settings.topic_transactions, inputs
    app.topics.add(transactions)  # subscribed through Faust's conductor; its records come in bulk (`bulk_input`)
    next_offsets: dict[int, int] = {}
    guard = OffsetGuard()

    @app.agent(name="score-transactions")
    async def score_transactions(stream: faust.StreamT) -> None:
        """Score the input a batch at a time, as the consumer fetched it (`stream_scorer.bulk_input`).

        A batch is prepared while the one before it is published (`BatchScorer.prepare_overlapped`);
        each is published, and its offsets acked, only after the one before it.
        """
        publishing: asyncio.Future | None = None  # the previous batch: published, saved, then acked
        while True:
            fetched = await inputs.take(settings.scorer_batch_size)
            try:
                if fetched.generation != app.consumer_generation_id:
                    await inputs.done()  # a rebalance passed these partitions on: their next owner reads them
                    continue
                delivery = guard.take(fetched.records, fetched.generation, app.consumer.committed_offset)
                records = fetched.records
                if delivery.holes:
                    records = in_offset_order(records, await fill(delivery.holes))
                prepared = await scorer.prepare_overlapped(records)
                if publishing is not None and not await publishing:
                    await inputs.done()
                    return  # the worker stops
            except Abandoned:  # the worker stops while the batch waits for a dependency: never acked, read again
                await inputs.done()
                return
            except BaseException:
                await inputs.done()
                raise
            publishing = asyncio.ensure_future(finish(prepared, records, delivery, fetched.generation))

    async def finish(prepared: Prepared | None, records: list[Record], delivery: Delivery, generation: int) -> bool:
        """Give every record of the batch its outcome, then ack its offsets; False if the worker stopped meanwhile."""
        try:
            await scorer.publish_prepared(prepared, records)
            app.consumer.ack_ranges(delivery.spans, generation)
        except Abandoned:  # never acked: the next worker reads the batch again
            return False
        finally:
            await inputs.done()  # after the ack: a rebalance or a stop waiting for this batch then commits it
        for partition, (_, end) in delivery.spans.items():
            next_offsets[partition] = end
        update_lag()
        return True

    async def fill(holes: list[Hole]) -> list[Record]:
        """The records the consumer skipped, read from the broker (retried while Kafka is unavailable)."""
        for hole in holes:
            log.warning("partition %d: offsets %d to %d were not delivered; reading them from the broker",
                        hole.partition, hole.start, hole.end - 1)
        filled = await scorer.backpressure.run(
            lambda: read_holes(settings, settings.topic_transactions, holes))
        metrics.skipped_read_again.inc(len(filled))
        return filled

    def update_lag() -> None:
        for tp in input_partitions():
            highwater = app.consumer.highwater(tp)
            if highwater is not None and tp.partition in next_offsets:
                metrics.consumer_lag.labels(str(tp.partition)).set(max(0, highwater - next_offsets[tp.partition]))

    app.open_dependencies = feast.warm_up  # begun as the app starts (`ScorerFaustApp.on_first_start`)
    if on_disk:
        app.prepare_table = lambda: fill_empty_table(settings, table)

    @app.task  # Faust starts its tasks once the table is recovered
    async def warm_up() -> None:
        await app.tables.recovery.completed.wait()
        await app.dependencies_opened()
        # Everything loaded so far (modules, Feast, the recovered table) lives as long as the worker:
        # out of the collector's sight, full collections stay short and p99 latency with them.
        gc.collect()
        gc.freeze()
        gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])
        if on_disk:  # seconds on a busy machine, while the worker already scores: after the collection
            await remember_changelog(settings, table.changelog_topic.get_topic_name())
        metrics.set_consuming()
        log.info("Feast store open; scoring %s -> %s with %s", settings.topic_transactions, settings.topic_scores,
                 settings.predictor_url)

    return ScorerApp(app, score_transactions, scorer, metrics)


async def remember_changelog(settings: Settings, topic: str) -> None:
    """Mark the table's directory with the changelog it recovered from (`stream_scorer.table_disk`)."""
    try:
        topic_id = await asyncio.to_thread(changelog_topic_id, settings, topic)
    except Exception as error:  # noqa: BLE001 - kafka-python's errors; without the mark the next start still trusts the disk
        log.warning("could not read the id of %s (%s); the table's directory stays unmarked", topic, error)
        return
    if topic_id is not None:
        remember(table_dir(settings), topic_id)


class ScorerFaustApp(faust.App):
    """A Faust app whose consumer hands the input topic over in bulk, and tells a waiting batch to give up on stop.

    The consumer is `BulkInputConsumer`: Faust's own, with each fetch of the input
    topic put in `inputs` whole, for the agent to take a batch at a time.

    Faust's consumer waits on stop until the batch being scored has its outcome; a batch
    that waits for the predictor would hold the stop until the supervisor kills the worker,
    and nothing would be committed. Abandoned, its offsets are never acked, and the
    offsets of everything scored before it are committed.
    """

    scorer: BatchScorer | None = None
    input_topic: str = ""
    inputs: InputBuffer | None = None  # the input topic's fetched records, waiting for the agent
    open_dependencies: Callable[[], Awaitable[None]] | None = None  # the Feast store and its push helper
    prepare_table: Callable[[], Awaitable[int]] | None = None  # an empty table directory filled in bulk
    _opening: asyncio.Future | None = None

    async def on_first_start(self) -> None:
        """Begin opening the dependencies at once, alongside the group join and the table's recovery.

        Faust starts an app's tasks only after the table is recovered; opening the Feast
        store there (seconds) came on top of the recovery, and the first score waited for both.
        An empty table directory is filled here (`stream_scorer.table_fill`), before the
        consumer starts, so that Faust's recovery starts from what it wrote.
        """
        await super().on_first_start()
        self._opening_started()
        if self.prepare_table is not None:
            await self.prepare_table()

    async def dependencies_opened(self) -> None:
        """Wait until the dependencies are open (raises what opening them raised)."""
        await self._opening_started()

    def _opening_started(self) -> asyncio.Future:
        if self._opening is None:
            self._opening = asyncio.ensure_future(self.open_dependencies() if self.open_dependencies else asyncio.sleep(0))
        return self._opening

    def _new_consumer(self) -> BulkInputConsumer:
        consumer = BulkInputConsumer(self.transport, callback=self.topics.on_message, loop=self.transport.loop,
                                     on_partitions_revoked=self._on_partitions_revoked,
                                     on_partitions_assigned=self._on_partitions_assigned, beacon=self.beacon)
        consumer.input_topic, consumer.inputs = self.input_topic, self.inputs
        return consumer

    async def on_stop(self) -> None:
        if self.scorer is not None:
            self.scorer.backpressure.stop()
        await super().on_stop()


def table_dir(settings: Settings) -> Path:
    """This worker's own directory for its table on disk.

    Two workers must never share one (RocksDB locks a DB; Faust waits 30 s for the lock,
    then fails). The group instance id names a worker across restarts (the pod's name,
    with its volume); without one, the metrics port, which no two workers on a host share.
    """
    owner = settings.scorer_group_instance_id or f"metrics-port-{settings.scorer_metrics_port}"
    return settings.data_dir / "worker" / settings.scorer_app_id / "tables" / owner


class TableStates:
    """The user table as `UserStates`: reads from its store, writes the changelog straight through the producer.

    Faust's own `table[key] = value` queues each changelog record in a buffer
    that drains one message per event-loop round trip; at thousands of users per
    second that buffer, not the scoring, set the pace. Here a batch's states go
    out as one burst of producer batches, and `save` returns once the changelog
    has acknowledged them all: a failed write is retried (`Backpressure`) before
    the batch's offsets are acked. Keys are the user_id's bytes, partitioned by the producers'
    partitioner, as `use_partitioner=True` makes Faust do. The local store is written only
    after the changelog acknowledged: it never holds a state the changelog lacks.
    This class keeps the table in Faust's memory store.
    """

    def __init__(self, table: faust.types.TableT, app: faust.App) -> None:
        self.table, self.app = table, app

    def get(self, user_id: str) -> dict | None:
        return self.table.data.get(user_id.encode())

    def get_many(self, user_ids: Sequence[str]) -> dict[str, dict | None]:
        return {user_id: self.get(user_id) for user_id in user_ids}

    async def save(self, states: dict[str, dict]) -> None:
        records = [(user_id.encode(), orjson.dumps(state), []) for user_id, state in states.items()]
        topic = self.table.changelog_topic.get_topic_name()
        self.keep(states, await _acknowledged(send_partition_batches(self.app, topic, records), topic))

    def keep(self, states: dict[str, dict], sent: list[SentBatch]) -> None:
        """Store the acknowledged states locally."""
        for user_id, state in states.items():
            self.table.data[user_id.encode()] = state


class RocksDBTableStates(TableStates):
    """`TableStates` in Faust's RocksDB store (`faust.stores.rocksdb`): a DB per changelog partition.

    That store picks a DB by the partition of the event being processed, and there is
    none in a batch; so each state goes to its key's partition (the changelog's, which
    `use_partitioner` makes the input's), and reads ask that partition's DB. With each
    partition's states goes, in the same atomic write, the changelog offset of the last
    one (`Store.offset_key`, what `set_persisted_offset` writes): Faust's recovery, on a
    restart or when a rebalance hands the partition back, reads the changelog from there.
    As the DB is written only after the changelog acknowledged, every record up to that
    offset is in the DB; one written by another worker since is replayed.
    The states this worker wrote last are also kept parsed (`RecentStates`), for as
    long as the consumer generation they were written in.
    """

    def __init__(self, table: faust.types.TableT, app: faust.App, cached_users: int) -> None:
        super().__init__(table, app)
        self.recent = RecentStates(cached_users)

    def get(self, user_id: str) -> dict | None:
        return self.get_many([user_id])[user_id]

    def get_many(self, user_ids: Sequence[str]) -> dict[str, dict | None]:
        """The recently written states from memory; the others with one multi-get per partition's DB."""
        found: dict[str, dict | None] = self.recent.known(user_ids, self.app.consumer_generation_id)
        keys: dict[int, list[bytes]] = {}
        for user_id in user_ids:
            if user_id in found:
                continue
            key = user_id.encode()
            keys.setdefault(partition_for(key, self._partitions), []).append(key)
        for partition, wanted in keys.items():
            for key, value in zip(wanted, self._db(partition).get(wanted), strict=True):
                found[key.decode()] = None if value is None else orjson.loads(value)
        return found

    def keep(self, states: dict[str, dict], sent: list[SentBatch]) -> None:
        """Write each partition's acknowledged states, and the changelog offset they reach, to its DB."""
        writes: dict[int, tuple[rocksdict.WriteBatch, int]] = {}
        for batch in sent:
            write, last = writes.get(batch.partition, (rocksdict.WriteBatch(raw_mode=True), -1))
            for key, value, _ in batch.messages:
                write.put(key, value)  # the very bytes of the changelog record
            writes[batch.partition] = write, max(last, batch.last_offset())
        for partition, (write, last) in writes.items():
            write.put(self.table.data.offset_key, str(last).encode())
            self._db(partition).write(write)
        self.recent.wrote(states, self.app.consumer_generation_id)

    @property
    def _partitions(self) -> list[int]:
        return list(range(self.table.partitions))

    def _db(self, partition: int) -> rocksdict.Rdict:
        return self.table.data._db_for_partition(partition)  # opens it if Faust has not yet


async def _acknowledged(sending: Awaitable[list[SentBatch]], topic: str) -> list[SentBatch]:
    """Wait for every delivery of ``sending``; any Kafka failure is a TransientFault (retried, never skipped).

    Even a failure that will not heal by itself (a message too large) is retried:
    the record can then have no outcome, and the contract says to stop consuming
    rather than move past it.
    """
    try:
        sent = await sending
        await asyncio.gather(*(batch.delivery for batch in sent))
    except asyncio.CancelledError:
        raise
    except Exception as error:  # noqa: BLE001 - aiokafka raises its own errors and asyncio's timeouts
        raise TransientFault("kafka", f"sending to {topic} failed: {type(error).__name__}: {error}") from error
    return sent
