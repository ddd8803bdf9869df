"""10,000 transactions through the real broker: none lost, each a valid CloudEvent, per-user order kept."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import pytest
from cloudevents.kafka import to_binary
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from fraud.errors import FraudError

from fraud.events import Transaction, decode, encode, to_cloudevent
from fraud.settings import Settings
from producers.publisher import make_producer, publish
from producers.sources import SyntheticSource
from producers.synthetic import synthetic_transactions


def consume_all(settings: Settings, topic: str, expected: int, timeout_s: float = 60) -> list:
    """Read a topic from the start until ``expected`` messages arrived or nothing came for a while."""
    consumer = KafkaConsumer(topic, **settings.kafka_client_config(), group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=int(timeout_s * 1000))
    try:
        messages = []
        for message in consumer:
            messages.append(message)
            if len(messages) >= expected:
                break
        return messages
    finally:
        consumer.close()


def test_ten_thousand_events_arrive_whole_and_in_order_per_user(kafka_settings: Settings, new_topic: Callable[..., str]) -> None:
    topic = new_topic("roundtrip", partitions=6)
    report = publish(SyntheticSource(10_000, users=200, seed=42), kafka_settings, topic=topic)
    assert (report.delivered, report.failed, report.rejected) == (10_000, 0, 0)

    messages = consume_all(kafka_settings, topic, expected=10_000)
    assert len(messages) == 10_000
    events = [decode(m.value, Transaction) for m in messages]  # raises on any invalid CloudEvent
    assert len({e.transaction_id for e in events}) == 10_000
    assert all(m.key == e.user_id.encode() for m, e in zip(messages, events, strict=True))
    assert all(dict(m.headers)["content-type"] == b"application/cloudevents+json" for m in messages)

    partitions_of_user: dict[str, set[int]] = defaultdict(set)
    times_of_user: dict[str, list] = defaultdict(list)
    for message, event in sorted(zip(messages, events, strict=True), key=lambda pair: (pair[0].partition, pair[0].offset)):
        partitions_of_user[event.user_id].add(message.partition)
        times_of_user[event.user_id].append(event.event_time)
    assert all(len(parts) == 1 for parts in partitions_of_user.values())  # key = user_id
    assert all(times == sorted(times) for times in times_of_user.values())  # one user's events stay ordered
    assert len({p for parts in partitions_of_user.values() for p in parts}) == 6  # and users spread out


def test_both_content_modes_survive_the_broker_and_decode_alike(kafka_settings: Settings, new_topic: Callable[..., str]) -> None:
    # Binary mode as Knative's KafkaSink sends it (attributes in ce_ headers), made by the cloudevents SDK.
    topic = new_topic("modes", partitions=1)
    transactions = list(synthetic_transactions(20, users=5, seed=3))
    producer = KafkaProducer(**kafka_settings.kafka_client_config(), acks="all")
    try:
        for transaction in transactions:
            binary = to_binary(to_cloudevent(transaction, "knative"))
            producer.send(topic, key=transaction.user_id.encode(), value=binary.value, headers=list(binary.headers.items()))
            key, value, headers = encode(transaction, "fraud.producers")
            producer.send(topic, key=key, value=value, headers=headers)
        producer.flush()
    finally:
        producer.close()
    messages = consume_all(kafka_settings, topic, expected=40)
    decoded = [decode(m.value, Transaction, m.headers) for m in messages]
    assert decoded == [t for t in transactions for _ in range(2)]


def test_the_producer_is_idempotent_with_acks_all(kafka_settings: Settings) -> None:
    producer = make_producer(kafka_settings)
    try:
        # kafka-python maps acks="all" to -1, and would have raised had another option conflicted with idempotence.
        assert producer.config["enable_idempotence"] is True and producer.config["acks"] == -1
    finally:
        producer.close()


def test_rate_limit_is_honoured(kafka_settings: Settings, new_topic: Callable[..., str]) -> None:
    topic = new_topic("paced", partitions=1)
    report = publish(SyntheticSource(300, seed=1), kafka_settings, topic=topic, rate=200)
    assert report.delivered == 300
    assert 1.2 <= report.seconds < 5.0  # 300 events at 200/s take about 1.5 s


def test_delivery_failures_are_counted_not_hidden(kafka_settings: Settings, new_topic: Callable[..., str]) -> None:
    # The broker refuses every record of this topic as too large: a real, non-retriable delivery failure.
    topic = new_topic("tiny", partitions=1)
    admin = KafkaAdminClient(**kafka_settings.kafka_client_config())
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": "200"})])
    finally:
        admin.close()
    with pytest.raises(FraudError, match=r"\(0 delivered, 50 failed\): .*MessageSizeTooLarge"):
        publish(SyntheticSource(50, seed=1), kafka_settings, topic=topic)


def test_an_illegal_topic_name_is_a_clear_error(kafka_settings: Settings) -> None:
    with pytest.raises(FraudError, match="illegal"):
        publish(SyntheticSource(10, seed=1), kafka_settings, topic="bad topic name!")
