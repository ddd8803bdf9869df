"""Publish transactions to Kafka as CloudEvents with kafka-python: keyed by user, acks=all, batched."""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata

from fraud.errors import FraudError
from fraud.settings import Settings
from producers.encoding import BackgroundEncoder, EncodedFollowUp
from producers.sources import TransactionSource

log = logging.getLogger(__name__)


def make_producer(settings: Settings) -> KafkaProducer:
    """A KafkaProducer tuned for throughput without giving up durability (acks=all, idempotent)."""
    try:
        return KafkaProducer(
            **settings.kafka_client_config(),
            # Explicit, so kafka-python raises on a conflicting option instead of quietly dropping idempotence:
            # a retried batch is then never written twice, and one user's events keep their order.
            enable_idempotence=True,
            acks="all",
            linger_ms=settings.producer_linger_ms,
            batch_size=settings.producer_batch_size,
            compression_type=None if settings.producer_compression == "none" else settings.producer_compression,
        )
    except KafkaError as error:
        raise FraudError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {error} (is `fraud stack up` running?)") from error


@dataclass
class DeliveryReport:
    """What happened to every event offered to the producer."""

    delivered: int = 0
    failed: int = 0
    rejected: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0

    def settle(self, pending: deque[list[FutureRecordMetadata]], final_wait_s: float | None = None) -> None:
        """Count the outcome of each fully completed chunk of sends, oldest first.

        Checking finished futures a chunk at a time is much cheaper than a
        callback per record, which would run on kafka-python's busy sender
        thread. With ``final_wait_s``, everything left is counted, waiting at
        most that long in all; a send never acknowledged by then counts as failed.
        """
        deadline = None if final_wait_s is None else time.monotonic() + final_wait_s
        while pending and (deadline is not None or all(future.is_done for future in pending[0])):
            for future in pending.popleft():
                if not future.is_done and deadline is not None:
                    try:
                        future.get(timeout=max(0.0, deadline - time.monotonic()))
                    except KafkaError:
                        pass  # counted below
                if future.is_done and future.succeeded():
                    self.delivered += 1
                    continue
                self.failed += 1
                if len(self.errors) < 5:
                    error = future.exception if future.is_done else "not acknowledged in time"
                    self.errors.append(str(error) or type(error).__name__)


class Progress(Protocol):
    """A progress display: told how many more events were handled."""

    def advance(self, count: int) -> None: ...


class FollowUpSender(Protocol):
    """Sends a source's follow-ups (e.g. `producers.labels.LabelScheduler`) on the transactions' producer."""

    def add(self, follow_ups: list[EncodedFollowUp]) -> None: ...

    def send_due(self, producer: KafkaProducer) -> None: ...

    def drain(self, producer: KafkaProducer) -> None: ...

    def settle(self, final_wait_s: float) -> None: ...


class _Pacer:
    """Spaces sends to ``rate`` events/s (0: no pacing) without drifting over a long run."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.start = time.perf_counter()

    def wait(self, sent: int) -> None:
        if self.interval:
            ahead = self.start + sent * self.interval - time.perf_counter()
            if ahead > 0.001:
                time.sleep(ahead)


def publish(
    source: TransactionSource,
    settings: Settings,
    topic: str | None = None,
    rate: float | None = None,
    progress: Progress | None = None,
    follow_ups: FollowUpSender | None = None,
) -> DeliveryReport:
    """Send every transaction of ``source`` and wait until each is acknowledged or has failed.

    Rejected dataset rows are counted and logged, never sent. ``progress`` is
    anything with ``advance(n)``, called as events are handed to the producer.
    ``follow_ups`` gets the source's follow-ups as their transactions go out,
    sends them when due, and is drained before this returns; the report's
    time and rate are the transactions' alone.
    """
    topic = topic or settings.topic_transactions
    pacer = _Pacer(settings.produce_rate if rate is None else rate)
    report = DeliveryReport()
    offered = 0
    # The encoder forks first, while this process has a single thread (see BackgroundEncoder).
    with BackgroundEncoder(source, settings.event_source) as chunks:
        producer = make_producer(settings)
        pending: deque[list[FutureRecordMetadata]] = deque()
        started = time.perf_counter()
        finished: float | None = None
        stopped_by: Exception | None = None
        try:
            for chunk in chunks:
                for row in chunk.rejected:
                    report.rejected += 1
                    log.warning("row %d rejected: %s", row.row, row.reason)
                    if len(report.errors) < 5:
                        report.errors.append(f"row {row.row}: {row.reason}")
                sent = []
                for key, value, headers in chunk.messages:
                    sent.append(producer.send(topic, key=key, value=value, headers=headers))
                    offered += 1
                    pacer.wait(offered)
                    if follow_ups is not None:
                        follow_ups.send_due(producer)
                pending.append(sent)
                report.settle(pending)
                if follow_ups is not None:
                    follow_ups.add(chunk.follow_ups)  # after their transactions: a follow-up never overtakes one
                if progress is not None:
                    progress.advance(len(chunk.messages) + len(chunk.rejected))
            producer.flush()
            finished = time.perf_counter()
            if follow_ups is not None:
                follow_ups.drain(producer)
        except (KafkaError, ValueError) as error:  # ValueError: kafka-python refuses e.g. an illegal topic name
            stopped_by = error
        finally:
            report.settle(pending, final_wait_s=settings.producer_final_wait_s)
            if follow_ups is not None:
                follow_ups.settle(settings.producer_final_wait_s)
            report.seconds = (finished if finished is not None else time.perf_counter()) - started
            try:
                producer.close(timeout=5 if stopped_by else None)
            except KafkaError as error:  # closing flushes again; the failure is already counted
                log.debug("producer close: %s", error)
    if stopped_by is not None:
        first = report.errors[0] if report.errors else str(stopped_by)
        raise FraudError(f"publishing to {topic} stopped after {offered:,} events "
                         f"({report.delivered:,} delivered, {report.failed:,} failed): {first}") from stopped_by
    return report
