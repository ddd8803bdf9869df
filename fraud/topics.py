"""Small read-only views of the broker's topics."""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition

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
