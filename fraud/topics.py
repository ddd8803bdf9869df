"""The broker's topics: small read-only views, and creating and deleting them (the stack, tests, tools)."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from aiokafka.structs import TopicPartition as AsyncTopicPartition
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from fraud.errors import FraudError
from fraud.settings import Settings

_FETCH_BYTES = 16 << 20  # per partition and request, when reading a range: large batches, few round trips


def partitions_of(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions in order; empty if the topic does not exist."""
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]


@contextmanager
def _reader(settings: Settings) -> Iterator[KafkaConsumer]:
    """A consumer outside any group, which never commits offsets."""
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False)
    try:
        yield consumer
    finally:
        consumer.close()


def topic_event_counts(settings: Settings, topics: list[str] | None = None) -> dict[str, int]:
    """Events currently held by each topic: the sum over partitions of end minus beginning offsets."""
    counts: dict[str, int] = {}
    with _reader(settings) as consumer:
        for topic in topics or list(settings.topic_partitions):
            partitions = partitions_of(consumer, topic)
            if not partitions:
                counts[topic] = 0
                continue
            ends, starts = consumer.end_offsets(partitions), consumer.beginning_offsets(partitions)
            counts[topic] = sum(ends[tp] - starts[tp] for tp in partitions)
    return counts


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The next offset of each partition of ``topic``: a bookmark to read from later."""
    with _reader(settings) as consumer:
        return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions_of(consumer, topic)).items()}


def offsets_since(settings: Settings, topic: str, since_ms: int) -> dict[int, int]:
    """Per partition, the first offset whose record timestamp is at or after ``since_ms`` (else the end): a bookmark."""
    with _reader(settings) as consumer:
        partitions = partitions_of(consumer, topic)
        found = consumer.offsets_for_times({tp: since_ms for tp in partitions}) if partitions else {}
        ends = consumer.end_offsets(partitions) if partitions else {}
        return {tp.partition: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in partitions}


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the product's asyncio Kafka clients (aiokafka, Faust), or None without TLS."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    return ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)


def aiokafka_config(settings: Settings) -> dict:
    """`Settings.kafka_client_config` in aiokafka's spelling (an SSL context instead of a CA file)."""
    config = settings.kafka_client_config()
    config.pop("ssl_cafile", None)
    if (context := ssl_context(settings)) is not None:
        config["ssl_context"] = context
    config["bootstrap_servers"] = ",".join(config["bootstrap_servers"])
    return config


async def read_range(settings: Settings, topic: str, start: dict[int, int], end: dict[int, int] | None = None,
                     patience_s: float = 10.0) -> AsyncIterator[tuple[int, list]]:
    """Every record of ``topic`` from the ``start`` bookmark up to (not including) the ``end`` one, a fetch at a time.

    Yields (partition, records) as aiokafka fetches them, each list in offset order. ``end``
    defaults to the end offsets as the read begins; a partition missing from ``start`` is
    read from its beginning. A partition is done when the consumer's position reaches its
    end, so offsets that hold no record (transaction markers, compaction) are passed over,
    not waited for. Fetches are large (16 MB per partition): this is the bulk path, for the
    worker's table fill and for holes, and for every tool that reads a range.
    """
    if end is None:
        end = await asyncio.to_thread(end_offsets, settings, topic)  # none for a topic that does not exist
    wanted = {AsyncTopicPartition(topic, p): stop for p, stop in end.items() if stop > start.get(p, 0)}
    if not wanted:
        return
    consumer = AIOKafkaConsumer(**aiokafka_config(settings), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=_FETCH_BYTES,
                                fetch_max_bytes=4 * _FETCH_BYTES)
    await consumer.start()
    try:
        consumer.assign(list(wanted))
        for tp in wanted:
            consumer.seek(tp, start.get(tp.partition, 0))
        while wanted:
            fetched = await consumer.getmany(*wanted, timeout_ms=int(patience_s * 1000), max_records=50_000)
            for tp, records in fetched.items():
                inside = [record for record in records if record.offset < wanted.get(tp, -1)]
                if inside:
                    yield tp.partition, inside
            done = [tp for tp, stop in wanted.items() if await consumer.position(tp) >= stop]
            if not fetched and not done:
                missing = {tp.partition: (await consumer.position(tp), stop) for tp, stop in wanted.items()}
                raise FraudError(f"records of {topic} did not arrive within {patience_s:g} s "
                                 f"(partition: (position, end)) {missing}")
            for tp in done:
                del wanted[tp]
            if done and wanted:
                consumer.pause(*done)
    finally:
        await asyncio.sleep(0)  # aiokafka's coordinator task, cancelled on stop before it ever ran, would raise there
        await consumer.stop()


def read_between(settings: Settings, topic: str, start: dict[int, int], end: dict[int, int]) -> list[ConsumerRecord]:
    """`read_range` for code outside an event loop: every record of the range, in the order of their timestamps
    (ties by partition and offset), so a read across partitions comes out the same every time."""
    async def collect() -> list[ConsumerRecord]:
        return [record async for _, records in read_range(settings, topic, start, end) for record in records]

    return sorted(asyncio.run(collect()), key=lambda record: (record.timestamp, record.partition, record.offset))


class TopicTail:
    """A bookmark on ``topic``: each `read_new` returns the records that arrived since the previous one.

    For a watcher that polls a topic while others write it; one `end_offsets` and one
    `read_between` per call, so it never waits for records that are not there.
    """

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings, self.topic = settings, topic
        self.position: dict[int, int] = {}

    def read_new(self) -> list[ConsumerRecord]:
        """Every record written since the last call (since the start of the topic, the first time)."""
        end = end_offsets(self.settings, self.topic)
        records = list(read_between(self.settings, self.topic, self.position, end))
        self.position = end
        return records


def committed_offsets(settings: Settings, group: str, topic: str) -> dict[int, int]:
    """The offsets consumer group ``group`` has committed on ``topic`` (partitions without a commit are absent)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**settings.kafka_client_config())
    try:
        committed = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == topic and meta.offset >= 0}


def create_topics(settings: Settings, topics: dict[str, int] | None = None, configs: dict[str, str] | None = None) -> list[str]:
    """Create the topics that do not exist yet (default: the product's four); return those created."""
    wanted = settings.topic_partitions if topics is None else topics
    admin = KafkaAdminClient(**settings.kafka_client_config())
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(name, partitions, settings.topic_replication_factor, topic_configs=configs or {}) for name, partitions in wanted.items() if name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # someone else created it in the meantime: fine
        return [topic.name for topic in missing]
    finally:
        admin.close()


def delete_topics(settings: Settings, topics: list[str]) -> None:
    """Delete topics (benchmark and test scratch topics); missing ones are ignored."""
    admin = KafkaAdminClient(**settings.kafka_client_config())
    try:
        existing = set(admin.list_topics())
        doomed = [topic for topic in topics if topic in existing]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()


def recreate_topic(settings: Settings, topic: str, partitions: int, configs: dict[str, str], timeout_s: float = 30) -> None:
    """Delete ``topic`` if it exists and create it again, empty (deletion finishes asynchronously on the broker)."""
    delete_topics(settings, [topic])
    deadline = time.monotonic() + timeout_s
    while True:
        admin = KafkaAdminClient(**settings.kafka_client_config())
        try:
            if topic not in set(admin.list_topics()):
                admin.create_topics([NewTopic(topic, partitions, settings.topic_replication_factor, topic_configs=configs)])
                return
        except TopicAlreadyExistsError:
            pass  # still being deleted
        finally:
            admin.close()
        if time.monotonic() > deadline:
            raise FraudError(f"topic {topic} was still being deleted after {timeout_s:.0f}s")
        time.sleep(0.5)
