"""`OffsetGuard`: a partition is scored in order and without a hole, whatever Faust delivers."""

from __future__ import annotations

from stream_scorer.batch import Record
from stream_scorer.offsets import OffsetGuard


def records(partition: int, *offsets: int) -> list[Record]:
    return [Record(b"k", b"v", [], "transactions", partition, offset, 0.0) for offset in offsets]


def offsets(found: list[Record]) -> list[tuple[int, int]]:
    return [(record.partition, record.offset) for record in found]


def test_contiguous_records_pass_and_a_redelivery_goes_on_to_the_scorer() -> None:
    guard = OffsetGuard()
    first = guard.sort(records(0, 5, 6, 7) + records(1, 40, 41), generation=1)
    assert offsets(first.in_order) == [(0, 5), (0, 6), (0, 7), (1, 40), (1, 41)] and not first.held
    again = guard.sort(records(0, 6, 7, 8), generation=1)  # the scorer skips 6 and 7, which it scored
    assert offsets(again.in_order) == [(0, 6), (0, 7), (0, 8)] and not again.seeks


def test_records_past_a_hole_are_held_back_and_the_partition_is_read_again_from_the_hole() -> None:
    guard = OffsetGuard()
    guard.sort(records(0, 10, 11), generation=1)
    skipped = guard.sort(records(0, 15, 16) + records(1, 3), generation=1)  # Faust dropped 12..14
    assert offsets(skipped.held) == [(0, 15), (0, 16)] and skipped.seeks == {0: 12}
    assert offsets(skipped.in_order) == [(1, 3)]
    stale = guard.sort(records(0, 17), generation=1)  # fetched before the seek: held too, no second seek
    assert offsets(stale.held) == [(0, 17)] and not stale.seeks
    reread = guard.sort(records(0, 12, 13, 14, 15, 16, 17), generation=1)
    assert offsets(reread.in_order) == [(0, 12), (0, 13), (0, 14), (0, 15), (0, 16), (0, 17)] and not reread.held


def test_a_real_hole_is_accepted_once_the_broker_answers_from_it_again() -> None:
    guard = OffsetGuard()
    guard.sort(records(2, 100), generation=4)
    first = guard.sort(records(2, 102), generation=4)  # 101: a transaction marker, nothing to read
    assert first.seeks == {2: 101}
    accepted = guard.sort(records(2, 102, 103), generation=4)
    assert offsets(accepted.in_order) == [(2, 102), (2, 103)] and not accepted.held


def test_a_new_generation_starts_afresh() -> None:
    guard = OffsetGuard()
    guard.sort(records(0, 10), generation=1)
    after_rebalance = guard.sort(records(0, 50), generation=2)  # another worker scored 11..49 meanwhile
    assert offsets(after_rebalance.in_order) == [(0, 50)] and not after_rebalance.held
