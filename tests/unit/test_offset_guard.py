"""`OffsetGuard` finds the offsets Faust skipped; the app keeps Faust from committing past them until scored."""

from __future__ import annotations

import asyncio

from faust.types import TP

from fraud.settings import Settings
from stream_scorer.app import build_app
from stream_scorer.batch import Record
from stream_scorer.offsets import Hole, OffsetGuard, in_offset_order


def records(partition: int, *offsets: int) -> list[Record]:
    return [Record(b"k", b"v", [], "transactions", partition, offset, 0.0) for offset in offsets]


def offsets(found: list[Record]) -> list[tuple[int, int]]:
    return [(record.partition, record.offset) for record in found]


def test_contiguous_records_and_redeliveries_leave_no_hole() -> None:
    guard = OffsetGuard()
    assert guard.holes(records(0, 5, 6, 7) + records(1, 40, 41), generation=1) == []
    assert guard.holes(records(0, 6, 7, 8), generation=1) == []  # the scorer skips 6 and 7, which it scored
    assert guard.holes(records(0, 9), generation=1) == []


def test_a_jump_is_a_hole_from_the_offset_expected_to_the_one_delivered() -> None:
    guard = OffsetGuard()
    guard.holes(records(0, 10, 11), generation=1)
    assert guard.holes(records(0, 15, 16, 20) + records(1, 3), generation=1) == [Hole(0, 12, 15), Hole(0, 17, 20)]
    assert guard.holes(records(0, 21), generation=1) == []


def test_a_new_generation_starts_from_whatever_faust_delivers_first() -> None:
    guard = OffsetGuard()
    guard.holes(records(0, 10, 11), generation=1)
    assert guard.holes(records(0, 4, 5), generation=2) == []  # sought back to the committed offset
    assert guard.holes(records(0, 30), generation=3) == []


def test_filled_records_go_in_offset_order_within_each_partition() -> None:
    batch = records(1, 7) + records(0, 15, 16, 20)
    filled = records(0, 12, 13, 14, 17, 18, 19)
    assert offsets(in_offset_order(batch, filled)) == [(0, o) for o in range(12, 21)] + [(1, 7)]


def test_faust_counts_a_gap_in_the_input_done_only_once_the_agent_says_so(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, topic_transactions="tx-in")
    app = build_app(settings).app
    consumer = app.consumer
    tx, other = TP("tx-in", 0), TP("user-activity-changelog", 0)

    async def faust_finds_gaps_then_the_agent_fills_one() -> None:
        await consumer._add_gap(tx, 12, 15)  # how Faust's fetch loop reports a jump from 11 to 15
        await consumer._add_gap(other, 3, 5)
        assert not consumer._gap.get(tx) and sorted(consumer._gap[other]) != []
        await app.count_as_done([Hole(0, 12, 15)], app.consumer_generation_id)
        assert [(i.begin, i.end) for i in sorted(consumer._gap[tx])] == [(12, 15)]  # 12, 13, 14; not 15
        await app.count_as_done([Hole(0, 30, 40)], app.consumer_generation_id + 1)  # a rebalance passed
        assert [(i.begin, i.end) for i in sorted(consumer._gap[tx])] == [(12, 15)]

    asyncio.run(faust_finds_gaps_then_the_agent_fills_one())

