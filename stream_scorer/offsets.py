"""`OffsetGuard`: every partition is scored in order and without a hole, whatever Faust delivers.

faust-streaming can drop records it has already fetched: a fetch cut short by a
rebalance, a record whose hand-over was abandoned when flow stopped. The next
record it delivers for that partition is then further on, and its consumer takes
the jump for a gap (what compaction or transaction markers leave) and commits
past it: the dropped records would never get an outcome. Holes in the input
topic are rare (only a transactional producer's markers make them), so the
guard treats a jump as a loss until the broker shows otherwise: records of the
partition past the hole are held back, and the agent seeks the partition back to
the first offset without an outcome. If the broker then answers from the same
far offset again, the hole is real and is accepted.

Within one consumer generation the guard also sees redeliveries (offsets it has
passed already): those go on to the scorer, whose redelivery check skips what
was scored. A new generation (a rebalance) starts afresh: Faust seeks every
partition to its committed offset then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from stream_scorer.batch import Record


@dataclass
class Guarded:
    """A batch sorted by the guard: what to score, what to hold back, and where to seek partitions back to."""

    in_order: list[Record] = field(default_factory=list)
    held: list[Record] = field(default_factory=list)
    seeks: dict[int, int] = field(default_factory=dict)  # partition -> offset to read again from


class OffsetGuard:
    """Per partition, the next offset the agent expects in this consumer generation."""

    def __init__(self) -> None:
        self.generation: int | None = None
        self.expected: dict[int, int] = {}
        self.reading_again: dict[int, int] = {}  # partition -> the far offset seen at its hole

    def sort(self, records: Sequence[Record], generation: int) -> Guarded:
        """Split ``records`` (in delivery order) into those to score now and those held back."""
        if generation != self.generation:
            self.generation, self.expected, self.reading_again = generation, {}, {}
        guarded = Guarded()
        for record in records:
            partition, offset = record.partition, record.offset
            expected = self.expected.get(partition)
            if expected is None or offset == expected or offset < expected or self._hole_is_real(partition, offset):
                if expected is None or offset >= expected:
                    self.expected[partition] = offset + 1
                    self.reading_again.pop(partition, None)
                guarded.in_order.append(record)
                continue
            guarded.held.append(record)
            if partition not in self.reading_again and partition not in guarded.seeks:
                self.reading_again[partition] = offset
                guarded.seeks[partition] = expected
        return guarded

    def _hole_is_real(self, partition: int, offset: int) -> bool:
        """Read again from the hole, the broker answered with the same far offset: nothing was there."""
        return self.reading_again.get(partition) == offset
