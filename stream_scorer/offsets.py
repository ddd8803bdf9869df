"""Holes in what the worker is handed: found by `OffsetGuard`, filled by `read_holes`, counted done only once scored.

Each partition's records must reach the scorer in an unbroken run of offsets, or the
offsets between would be committed without an outcome. faust-streaming's own fetch
path could skip records it had fetched (it dropped the rest of a fetched batch for a
partition paused meanwhile, and a record whose hand-over a rebalance cut); the worker
now takes the input topic in bulk past that path (`stream_scorer.bulk_input`), but
the guard stays: whatever drops a record on the way, the agent sees the jump in a
partition's offsets, reads the missing range straight from the broker with its own
consumer, scores it in offset order with the batch, and only then acks the range.

The guard gives each batch its spans: per partition, the offsets from the one expected
to the last delivered, holes included. Those are what the agent acks once the batch is
scored. The first span of a consumer generation starts at the partition's committed
offset, so offsets that hold no record there (transaction markers, or records the
topic's retention deleted) do not keep Faust from committing.

Within one consumer generation the guard also sees redeliveries (offsets it has
passed already): those go on to the scorer, whose redelivery check skips what was
scored. A new generation (a rebalance) starts afresh: Faust seeks every partition to
its committed offset then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiokafka.errors import KafkaError

from fraud.errors import FraudError
from fraud.settings import Settings
from fraud.topics import read_range
from stream_scorer.batch import Record, from_consumer_records
from stream_scorer.faults import TransientFault


@dataclass(frozen=True)
class Hole:
    """Offsets ``start`` up to (not including) ``end`` of ``partition`` were not delivered; ``end`` was."""

    partition: int
    start: int
    end: int


@dataclass(frozen=True)
class Delivery:
    """What the guard found in one batch: the holes to fill, and per partition the offsets [start, end) it covers."""

    holes: list[Hole] = field(default_factory=list)
    spans: dict[int, tuple[int, int]] = field(default_factory=dict)


class OffsetGuard:
    """Per partition, the next offset the agent expects in this consumer generation."""

    def __init__(self) -> None:
        self.generation: int | None = None
        self.expected: dict[int, int] = {}

    def take(self, records: Sequence[Record], generation: int,
             committed: Callable[[int], int | None] = lambda partition: None) -> Delivery:
        """The holes before ``records`` (each partition's in offset order) or between them, and the spans they cover.

        ``committed(partition)`` is where the generation began reading the partition (None if unknown).
        """
        if generation != self.generation:
            self.generation, self.expected = generation, {}
        delivery = Delivery()
        for record in records:
            partition = record.partition
            expected = self.expected.get(partition)
            if expected is None:
                start = committed(partition)
                expected = record.offset if start is None or start > record.offset else start
            if record.offset > expected:
                delivery.holes.append(Hole(partition, expected, record.offset))
            if record.offset >= expected:
                delivery.spans[partition] = (delivery.spans.get(partition, (expected,))[0], record.offset + 1)
                self.expected[partition] = record.offset + 1
        return delivery


async def read_holes(settings: Settings, topic: str, holes: Sequence[Hole]) -> list[Record]:
    """The records of ``topic`` inside ``holes`` (by partition, then offset), read from the broker; a failure to read
    is a TransientFault.

    A hole may hold fewer records than offsets (transaction markers): then fewer come back.
    """
    start: dict[int, int] = {}
    end: dict[int, int] = {}
    for hole in holes:
        start[hole.partition] = min(hole.start, start.get(hole.partition, hole.start))
        end[hole.partition] = max(hole.end, end.get(hole.partition, hole.end))
    try:
        found = [record async for _, fetched in read_range(settings, topic, start, end) for record in fetched]
    except (FraudError, KafkaError, OSError) as error:
        raise TransientFault("kafka", f"reading skipped records of {topic} failed: {error}") from error
    inside = [r for r in found if any(h.partition == r.partition and h.start <= r.offset < h.end for h in holes)]
    return from_consumer_records(sorted(inside, key=lambda r: (r.partition, r.offset)))  # fetches come in any order


def in_offset_order(batch: Sequence[Record], filled: Sequence[Record]) -> list[Record]:
    """The batch with the holes' records: each partition's records by offset (partitions are independent)."""
    return sorted([*batch, *filled], key=lambda record: (record.partition, record.offset))
