"""`read_holes` against a real broker: what the consumer did not deliver is read back, transaction markers are passed over."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kafka import KafkaProducer

from fraud.settings import Settings
from stream_scorer.offsets import Hole, read_holes


def test_the_records_inside_the_holes_come_back_with_their_key_value_headers_and_timestamp(
    kafka_settings: Settings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("holes", partitions=2)
    producer = KafkaProducer(**kafka_settings.kafka_client_config())
    for n in range(20):
        producer.send(topic, key=f"k{n}".encode(), value=f"v{n}".encode(), partition=n % 2,
                      headers=[("ce_id", f"id-{n}".encode())], timestamp_ms=1_700_000_000_000 + n)
    producer.flush()
    producer.close()

    found = asyncio.run(read_holes(kafka_settings, topic, [Hole(0, 2, 5), Hole(0, 7, 9), Hole(1, 0, 1)]))

    assert [(r.partition, r.offset) for r in found] == [(0, 2), (0, 3), (0, 4), (0, 7), (0, 8), (1, 0)]
    third = found[0]  # partition 0 holds n = 0, 2, 4, ...: offset 2 is n = 4
    assert (third.key, third.value, third.headers, third.topic) == (b"k4", b"v4", [("ce_id", b"id-4")], topic)
    assert third.timestamp_s == 1_700_000_000.004


def test_offsets_that_hold_only_transaction_markers_are_passed_over_not_waited_for(
    kafka_settings: Settings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("holes-tx", partitions=1)
    producer = KafkaProducer(**kafka_settings.kafka_client_config(), transactional_id=f"{topic}-producer")
    producer.init_transactions()
    for n in range(3):  # each transaction: one record, then its commit marker takes an offset
        producer.begin_transaction()
        producer.send(topic, key=b"k", value=f"v{n}".encode(), partition=0)
        producer.commit_transaction()
    producer.close()

    found = asyncio.run(read_holes(kafka_settings, topic, [Hole(0, 0, 6)]))

    assert [r.value for r in found] == [b"v0", b"v1", b"v2"]
    assert [r.offset for r in found] == [0, 2, 4]  # 1, 3 and 5 are the markers
