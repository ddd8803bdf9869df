"""`OffsetGuard` finds the offsets the worker was not handed, and gives the spans of offsets a batch may ack."""

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
    first = guard.take(records(0, 5, 6, 7) + records(1, 40, 41), generation=1)
    assert first.holes == [] and first.spans == {0: (5, 8), 1: (40, 42)}
    again = guard.take(records(0, 6, 7, 8), generation=1)  # the scorer skips 6 and 7, which it scored
    assert again.holes == [] and again.spans == {0: (8, 9)}
    assert guard.take(records(0, 9), generation=1).holes == []


def test_a_jump_is_a_hole_from_the_offset_expected_to_the_one_delivered() -> None:
    guard = OffsetGuard()
    guard.take(records(0, 10, 11), generation=1)
    found = guard.take(records(0, 15, 16, 20) + records(1, 3), generation=1)
    assert found.holes == [Hole(0, 12, 15), Hole(0, 17, 20)]
    assert found.spans == {0: (12, 21), 1: (3, 4)}  # the holes' offsets are acked with the batch, once filled
    assert guard.take(records(0, 21), generation=1).holes == []


def test_a_new_generation_starts_from_the_committed_offset_when_known() -> None:
    guard = OffsetGuard()
    guard.take(records(0, 10, 11), generation=1)
    assert guard.take(records(0, 4, 5), generation=2).holes == []  # sought back to the committed offset
    started = guard.take(records(0, 30) + records(1, 7), generation=3, committed={0: 27, 1: None}.get)
    assert started.holes == [Hole(0, 27, 30)] and started.spans == {0: (27, 31), 1: (7, 8)}


def test_filled_records_go_in_offset_order_within_each_partition() -> None:
    batch = records(1, 7) + records(0, 15, 16, 20)
    filled = records(0, 12, 13, 14, 17, 18, 19)
    assert offsets(in_offset_order(batch, filled)) == [(0, o) for o in range(12, 21)] + [(1, 7)]


def test_acked_spans_reach_faust_s_commit_only_in_their_generation(tmp_path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, topic_transactions="tx-in")
    app = build_app(settings).app
    consumer = app.consumer
    tx = TP("tx-in", 0)

    async def ack_then_commit_offsets() -> None:
        assert consumer.ack_ranges({0: (0, 5)}, app.consumer_generation_id)
        assert consumer.ack_ranges({0: (3, 8)}, app.consumer_generation_id)  # overlapping: each offset once
        assert not consumer.ack_ranges({0: (8, 20)}, app.consumer_generation_id + 1)  # a rebalance passed
        assert sorted(consumer._acked[tx]) == list(range(8))
        assert consumer._new_offset(tx) == 8  # what Faust's commit loop commits

    asyncio.run(ack_then_commit_offsets())
