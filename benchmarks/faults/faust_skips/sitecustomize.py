"""Chaos fault for `faust_skips` (benchmarks/chaos.py): the consumer loses records it has fetched.

Put on a worker's PYTHONPATH, Python loads this module at start-up (`site`), and it
wraps faust-streaming's `ThreadDelegateConsumer._getmany` (each fetch from the consumer
thread, which the worker's `BulkInputConsumer` and Faust's own fetch loop both read) so
that records of the input topic at offsets in `SKIPPED` are dropped, every time they are
fetched. Faust's own record-at-a-time path did this to the rest of a fetched batch of a
partition paused meanwhile; here it happens at known offsets instead of by timing. The
worker must find each hole, read it from the broker and score it; the scenario's
accounting says whether it did. Changelog records (the table's recovery) pass untouched.
"""

from __future__ import annotations

import faust.transport.consumer

SKIPPED = [range(100, 140), range(400, 401), range(700, 790)]  # per partition: a run, a single record, a long run

_getmany = faust.transport.consumer.ThreadDelegateConsumer._getmany


async def _skipping_getmany(self, active_partitions, timeout):
    records = await _getmany(self, active_partitions, timeout)
    return {tp: [record for record in tp_records
                 if tp.topic.endswith("-changelog") or not any(record.offset in skipped for skipped in SKIPPED)]
            for tp, tp_records in records.items()}


faust.transport.consumer.ThreadDelegateConsumer._getmany = _skipping_getmany
