"""The input topic in bulk: Faust's consumer hands each fetch of transactions to the agent whole.

Faust delivers a record at a time: its fetch loop turns each one into a message,
tracks it, hands it to the topic's channel under `Service.wait_first` (four tasks
and an `asyncio.wait` per record), and the agent's stream takes it, batches it and
acks it. That cost about 110 µs per event here, more than the scoring itself, and
held any Faust worker below about 8,000 events/s on one core.

`BulkInputConsumer` is Faust's own aiokafka consumer (the group, the rebalances, the
static membership, the commits, the table's changelog) with one change: records of
the input topic skip that per-record path. Each fetch (aiokafka's `getmany`, already
one list per partition) goes, as `Record`s, into an `InputBuffer`, from which the
agent takes batches. Records of every other topic (the table's changelog, while Faust
recovers it) still take Faust's path, a record at a time.

Offsets stay Faust's to commit, and move only past records with an outcome: the agent
acks a batch's offset ranges (`ack_ranges`) after the batch is scored; Faust's commit
loop commits each partition up to its first unacked offset. A batch left without an
outcome (the worker stops while it waits for a dependency) is simply never acked.
On a rebalance or a stop Faust waits for the streams to finish (`wait_empty`); here
that also means: drop the fetched batches no batch has taken (their offsets were never
acked: the next owner reads them again) and wait for the batch being scored.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka.errors import IllegalStateError
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer
from faust.types import TP
from faust.types.tuples import ack_lock

from stream_scorer.batch import Record, from_consumer_records

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fetched:
    """Records of the input topic from one fetch, in each partition's offset order, and the consumer generation."""

    generation: int
    records: list[Record]


class InputBuffer:
    """Fetched input records waiting for the agent, at most ``capacity`` of them; and the batch being scored.

    The fetch loop waits (`put`) while the buffer is full: consumption slows down to
    the agent's pace, and pauses while a batch waits for a dependency.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._waiting: deque[Fetched] = deque()
        self._size = 0
        self._changed = asyncio.Condition()
        self._in_flight = 0

    @property
    def size(self) -> int:
        """Records fetched and not yet taken."""
        return self._size

    async def put(self, fetched: Fetched) -> None:
        """Add one fetch; wait while the buffer is full (never refuses a fetch into an empty buffer)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._size == 0 or self._size + len(fetched.records) <= self.capacity)
            self._waiting.append(fetched)
            self._size += len(fetched.records)
            self._changed.notify_all()

    async def take(self, most: int) -> Fetched:
        """The oldest fetched records of one generation, at most ``most`` of them; wait for some. Call `done` after."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._size > 0)
            generation, records = self._waiting[0].generation, []
            while self._waiting and self._waiting[0].generation == generation and len(records) < most:
                fetched, room = self._waiting.popleft(), most - len(records)
                records += fetched.records[:room]
                if len(fetched.records) > room:  # the rest waits for the next batch
                    self._waiting.appendleft(Fetched(generation, fetched.records[room:]))
            self._size -= len(records)
            self._in_flight += 1
            self._changed.notify_all()
            return Fetched(generation, records)

    async def done(self) -> None:
        """The batch `take` gave has its outcome, or never will from this worker."""
        async with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    async def drop_waiting(self) -> int:
        """Forget every fetched record no batch has taken (they are read again by whoever owns them next)."""
        async with self._changed:
            dropped, self._size = self._size, 0
            self._waiting.clear()
            self._changed.notify_all()
            return dropped

    async def wait_idle(self) -> None:
        """Until no batch is being scored."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._in_flight == 0)


FETCH_MAX_WAIT_MS = 100  # how long the broker may hold a fetch that finds no new records (Faust sets 1,500)


class ShortPollConsumerThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, whose aiokafka consumer asks the broker to hold an empty fetch at most 100 ms.

    aiokafka sends one fetch at a time to a broker. Records it fetched wait in its
    buffer until Faust's fetch loop takes them, and that loop runs on the worker's
    event loop, busy while a batch is prepared. Once records have waited 100 ms
    (aiokafka's prefetch backoff), aiokafka fetches the other partitions the worker
    holds without them: Faust's own topics and the table's changelog, where nothing
    new comes. With Faust's 1,500 ms the broker held that fetch, and with it every
    new transaction, for up to 1.5 s: at 1,000 events/s the worker fell into cycles
    of one 1,600-record batch every 1.6 s (p99 about 2 s, in 5 runs of 10).
    """

    def _create_worker_consumer(self, transport):  # noqa: ANN001, ANN202 - Faust's signature
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by `start()`, which builds its fetcher
        return consumer


class BulkInputConsumer(Consumer):
    """Faust's aiokafka consumer, with the input topic's records handed over in bulk (see the module docstring)."""

    input_topic: str = ""
    inputs: InputBuffer

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return ShortPollConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def committed_offset(self, partition: int) -> int | None:
        """The input partition's committed offset (None when none, or 0): where a generation begins reading it."""
        return self._committed_offset.get(TP(self.input_topic, partition))

    def ack_ranges(self, ranges: Mapping[int, tuple[int, int]], generation: int) -> bool:
        """Count these input offsets (partition: [start, end)) done, so Faust commits past them; not if a
        rebalance has passed their partitions on since (``generation``)."""
        if generation != self.app.consumer_generation_id:
            return False
        with ack_lock:  # Faust's own lock over its ack bookkeeping
            for partition, (start, end) in ranges.items():
                tp = TP(self.input_topic, partition)
                committed = self._committed_offset[tp]
                index = self._acked_index[tp]
                fresh = [offset for offset in range(start if committed is None else max(start, committed), end)
                         if offset not in index]
                index.update(fresh)
                self._acked[tp].extend(fresh)
                self._n_acked += len(fresh)
        return True

    async def wait_empty(self) -> None:
        """Faust's wait for the streams, on a rebalance and a stop: drop what waits, let the scored batch finish."""
        await self.inputs.drop_waiting()
        await self.inputs.wait_idle()
        await super().wait_empty()

    async def _drain_messages(self, fetcher) -> None:  # noqa: ANN001 - Faust's Fetcher service
        """Faust's fetch loop (`Consumer._drain_messages`), with the input topic's records handed over a fetch at a time."""
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (self._stopped.is_set() or fetcher_stopped()):
                generation = self.app.consumer_generation_id
                records, active = await self._wait_next_records(1.0)
                await self.sleep(0)
                if not records or self.should_stop:
                    continue
                if not self.flow_active:  # fetched while a rebalance stopped the flow: read them again later
                    await self._seek_to_committed()
                    continue
                if self.app.consumer_generation_id != generation:
                    continue  # the new generation's seek reads them again
                inputs = await self._deliver_others(records, active)
                if inputs:
                    await self.wait_first(self.inputs.put(Fetched(generation, inputs)), self.suspend_flow.wait())
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _seek_to_committed(self) -> None:
        """Rewind to the committed offsets, as Faust's fetch loop does when the flow stopped under it.

        A rebalance may take the partitions away meanwhile: aiokafka then refuses the
        seek (IllegalStateError, seen in the chaos rebalance run), and the partitions'
        next owner, this worker or another, seeks them itself when they are assigned.
        """
        try:
            await self.perform_seek()
        except IllegalStateError as error:
            log.info("no seek back to the committed offsets: %s (the next assignment seeks)", error)

    async def _deliver_others(self, records: Mapping, active: set | None) -> list[Record]:
        """Send other topics' records through Faust's own path, a record at a time; return the input topic's."""
        inputs: list[Record] = []
        for tp, tp_records in records.items():
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue
            if tp.topic == self.input_topic:
                read = self._read_offset[tp]
                # a partition's records come in offset order: if the first is fresh, so are the rest
                fresh = tp_records if read is None or not tp_records or tp_records[0].offset >= read else [
                    r for r in tp_records if r.offset >= read]
                if fresh:
                    self._read_offset[tp] = fresh[-1].offset
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    inputs += from_consumer_records(fresh)
                continue
            for record in tp_records:
                await self._deliver_one(tp, record)
        return inputs

    async def _deliver_one(self, tp: TP, record) -> None:  # noqa: ANN001 - aiokafka's ConsumerRecord
        """What Faust's fetch loop does with one record of a topic not taken in bulk."""
        read = self._read_offset[tp]
        if read is not None and record.offset < read:
            return
        if read and record.offset - read > 1 and self.app.topics.acks_enabled_for(tp.topic):
            await self._add_gap(tp, read + 1, record.offset)
        await self.wait_first(self.callback(self._to_message(tp, record)), self.suspend_flow.wait())
        self._read_offset[tp] = record.offset
