"""The broker's topics: small read-only views, and creating and deleting them (the stack, tests, tools)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import time

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.consumer.fetcher import ConsumerRecord

from fraud.errors import FraudError
from fraud.settings import Settings


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


def read_between(settings: Settings, topic: str, start: dict[int, int], end: dict[int, int]) -> Iterator[ConsumerRecord]:
    """Every record of ``topic`` from the ``start`` bookmark up to (not including) the ``end`` one.

    A partition is done when the consumer's position reaches its end offset, so offsets
    that hold no record (transaction markers, compaction) are passed over, not waited for.
    """
    with _reader(settings) as consumer:
        wanted = {TopicPartition(topic, p): stop for p, stop in end.items() if stop > start.get(p, 0)}
        consumer.assign(list(wanted))
        for tp in wanted:
            consumer.seek(tp, start.get(tp.partition, 0))
        while wanted:
            batch = consumer.poll(timeout_ms=10_000)
            for tp, records in batch.items():
                yield from (record for record in records if record.offset < wanted.get(tp, -1))
            done = [tp for tp, stop in wanted.items() if consumer.position(tp) >= stop]
            if not batch and not done:
                missing = {tp.partition: (consumer.position(tp), stop) for tp, stop in wanted.items()}
                raise FraudError(f"records of {topic} did not arrive within 10 s (partition: (position, end)) {missing}")
            for tp in done:
                del wanted[tp]
            consumer.pause(*done)


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
