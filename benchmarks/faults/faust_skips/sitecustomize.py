"""Chaos fault for `faust_skips` (benchmarks/chaos.py): Faust skips records it has fetched.

Put on a worker's PYTHONPATH, Python loads this module at start-up (`site`), and it
wraps faust-streaming's `Consumer.getmany` so that records of the input topic at
offsets in `SKIPPED` are never handed to the stream, every time they are fetched.
That is what Faust itself does to the rest of a fetched batch of a partition paused
meanwhile (its table recovery pauses every input partition after a rebalance); here
it happens at known offsets instead of by timing. The worker must find each hole,
read it from the broker and score it; the scenario's accounting says whether it did.
Changelog records (the table's recovery) pass untouched.
"""

from __future__ import annotations

import faust.transport.consumer

SKIPPED = [range(100, 140), range(400, 401), range(700, 790)]  # per partition: a run, a single record, a long run

_getmany = faust.transport.consumer.Consumer.getmany


async def _skipping_getmany(self, timeout: float):
    async for tp, message in _getmany(self, timeout):
        if not tp.topic.endswith("-changelog") and any(message.offset in skipped for skipped in SKIPPED):
            continue
        yield tp, message


faust.transport.consumer.Consumer.getmany = _skipping_getmany
