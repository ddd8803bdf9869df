"""Read score events from the `fraud-scores` topic with kafka-python (`fraud scores`)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from kafka import KafkaConsumer
from kafka.errors import KafkaError

from fraud.errors import FraudError
from fraud.events import InvalidEvent, Score, decode
from fraud.settings import Settings
from fraud.topics import partitions_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreRecord:
    """A score event as read, or the reason it could not be read (``score`` is then None)."""

    partition: int
    offset: int
    score: Score | None
    error: str | None = None


def read_scores(
    settings: Settings,
    topic: str | None = None,
    from_beginning: bool = False,
    follow: bool = False,
    max_records: int | None = None,
    idle_timeout_s: float = 5.0,
) -> Iterator[ScoreRecord]:
    """Yield score events; without ``follow``, stop after ``idle_timeout_s`` with nothing new.

    ``max_records`` counts score events: a record that is not one is yielded (with its
    reason) but does not count, so ``--max 4`` prints four scores whatever else the topic holds.

    Reading never joins a consumer group, so it never moves the offsets of the
    systems that act on scores. Partitions added to the topic later are not read.
    """
    topic = topic or settings.topic_scores
    try:
        consumer = KafkaConsumer(
            **{**settings.kafka_client_config(), "client_id": f"{settings.kafka_client_id}-scores-{uuid.uuid4().hex[:6]}"},
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
            consumer_timeout_ms=-1 if follow else int(idle_timeout_s * 1000),
        )
    except KafkaError as error:
        raise FraudError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {error} (is `fraud stack up` running?)") from error
    try:
        partitions = partitions_of(consumer, topic)
        if not partitions:
            raise FraudError(f"topic {topic!r} does not exist on {settings.kafka_bootstrap}")
        # Fix each partition's start position now, so that nothing written after this call is missed.
        consumer.assign(partitions)
        (consumer.seek_to_beginning if from_beginning else consumer.seek_to_end)(*partitions)
        for partition in partitions:
            consumer.position(partition)
        log.info("reading %s from the %s (%d partitions)", topic, "beginning" if from_beginning else "end", len(partitions))
        seen = 0
        for message in consumer:
            try:
                record = ScoreRecord(message.partition, message.offset, decode(message.value, Score, message.headers))
            except InvalidEvent as error:
                record = ScoreRecord(message.partition, message.offset, None, error.reason)
            yield record
            seen += record.score is not None
            if max_records is not None and seen >= max_records:
                return
    finally:
        consumer.close()
