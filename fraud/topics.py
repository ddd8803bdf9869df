"""Small read-only views of the broker's topics."""

from __future__ import annotations

from collections.abc import Iterator

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from fraud.errors import FraudError
from fraud.settings import Settings


def topic_event_counts(settings: Settings, topics: list[str] | None = None) -> dict[str, int]:
    """Events currently held by each topic: the sum over partitions of end minus beginning offsets."""
    topics = topics or list(settings.topic_partitions)
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False)
    try:
        counts: dict[str, int] = {}
        for topic in topics:
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
            if not partitions:
                counts[topic] = 0
                continue
            ends = consumer.end_offsets(partitions)
            starts = consumer.beginning_offsets(partitions)
            counts[topic] = sum(ends[tp] - starts[tp] for tp in partitions)
        return counts
    finally:
        consumer.close()


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The next offset of each partition of ``topic``: a bookmark to read from later."""
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def read_between(settings: Settings, topic: str, start: dict[int, int], end: dict[int, int]) -> Iterator[ConsumerRecord]:
    """Every record of ``topic`` from the ``start`` bookmark up to (not including) the ``end`` one."""
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False)
    try:
        wanted = {p: (start.get(p, 0), stop) for p, stop in end.items() if stop > start.get(p, 0)}
        consumer.assign([TopicPartition(topic, p) for p in wanted])
        for partition, (first, _) in wanted.items():
            consumer.seek(TopicPartition(topic, partition), first)
        remaining = sum(stop - first for first, stop in wanted.values())
        while remaining > 0:
            batch = consumer.poll(timeout_ms=10_000)
            if not batch:
                raise FraudError(f"{remaining} records of {topic} did not arrive within 10 s")
            for records in batch.values():
                for record in records:
                    if record.offset < wanted[record.partition][1]:
                        remaining -= 1
                        yield record
    finally:
        consumer.close()
