"""Holes in what Faust delivers: found by `OffsetGuard`, filled by `read_holes`, counted done only once scored.

faust-streaming can skip records it has already fetched: its fetch loop drops
the rest of a fetched batch for a partition that was paused meanwhile (its own
table recovery pauses every input partition after a rebalance), and a record
whose hand-over was cut by a rebalance is dropped too. The next record it
delivers for that partition is then further on. Faust takes the jump for a gap
(what compaction or transaction markers leave) and commits past it: the skipped
records would never get an outcome.

So the worker keeps Faust from counting a gap in the input topic as done
(`ScorerFaustApp`), and the agent, seeing a jump in a partition's offsets,
reads the missing range straight from the broker with its own consumer, scores
it in offset order with the batch, and only then hands the gap to Faust.
Seeking Faust's consumer back instead does not work: records of the batch Faust
is still handing over move its read position on, and it then drops the records
read again as old.

Within one consumer generation the guard also sees redeliveries (offsets it has
passed already): those go on to the scorer, whose redelivery check skips what
was scored. A new generation (a rebalance) starts afresh: Faust seeks every
partition to its committed offset then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kafka.errors import KafkaError

from fraud.errors import FraudError
from fraud.settings import Settings
from fraud.topics import read_between
from stream_scorer.batch import Record
from stream_scorer.faults import TransientFault


@dataclass(frozen=True)
class Hole:
    """Offsets ``start`` up to (not including) ``end`` of ``partition`` were not delivered; ``end`` was."""

    partition: int
    start: int
    end: int


class OffsetGuard:
    """Per partition, the next offset the agent expects in this consumer generation."""

    def __init__(self) -> None:
        self.generation: int | None = None
        self.expected: dict[int, int] = {}

    def holes(self, records: Sequence[Record], generation: int) -> list[Hole]:
        """The ranges skipped before ``records`` (in delivery order) or between them."""
        if generation != self.generation:
            self.generation, self.expected = generation, {}
        found = []
        for record in records:
            expected = self.expected.get(record.partition)
            if expected is not None and record.offset > expected:
                found.append(Hole(record.partition, expected, record.offset))
            if expected is None or record.offset >= expected:
                self.expected[record.partition] = record.offset + 1
        return found


def read_holes(settings: Settings, topic: str, holes: Sequence[Hole]) -> list[Record]:
    """The records of ``topic`` inside ``holes``, read from the broker; a failure to read is a TransientFault.

    A hole may hold fewer records than offsets (transaction markers): then fewer come back.
    """
    start: dict[int, int] = {}
    end: dict[int, int] = {}
    for hole in holes:
        start[hole.partition] = min(hole.start, start.get(hole.partition, hole.start))
        end[hole.partition] = max(hole.end, end.get(hole.partition, hole.end))
    try:
        found = list(read_between(settings, topic, start, end))
    except (FraudError, KafkaError) as error:
        raise TransientFault("kafka", f"reading skipped records of {topic} failed: {error}") from error
    inside = [r for r in found if any(h.partition == r.partition and h.start <= r.offset < h.end for h in holes)]
    return [Record(r.key, r.value, list(r.headers or []), r.topic, r.partition, r.offset, r.timestamp / 1000)
            for r in inside]


def in_offset_order(batch: Sequence[Record], filled: Sequence[Record]) -> list[Record]:
    """The batch with the holes' records: each partition's records by offset (partitions are independent)."""
    return sorted([*batch, *filled], key=lambda record: (record.partition, record.offset))
