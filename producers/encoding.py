"""Encode transactions to CloudEvent Kafka messages in a helper process, in chunks.

Why a process: kafka-python's send() is pure Python and keeps one core busy, so
building and serialising the events in the same interpreter would slow
publishing by about a half (measured: `fraud bench produce`). A forked helper
does that work on the other core and hands over ready (key, value, headers) records.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
from collections.abc import Iterator
from dataclasses import dataclass, field

from fraud.errors import FraudError
from fraud.events import KafkaRecord, Payload, encode
from producers.dataset import RejectedRow
from producers.sources import TransactionSource

_CHUNK = 1000
_PREFETCH = 16  # chunks the helper may run ahead of the sender: bounds memory


@dataclass(frozen=True)
class FollowUp:
    """An event a source emits after a transaction, to be published ``delay_s`` after it (its label, say)."""

    payload: Payload
    delay_s: float
    event_source: str
    kind: str = ""  # what reports count it as, e.g. the label's source


@dataclass(frozen=True)
class EncodedFollowUp:
    """A follow-up ready to send once its delay has passed."""

    record: KafkaRecord
    delay_s: float
    kind: str


@dataclass
class EncodedChunk:
    """Ready-to-send messages, the rows that were rejected on the way, and follow-ups of the messages."""

    messages: list[KafkaRecord] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    follow_ups: list[EncodedFollowUp] = field(default_factory=list)


def encode_chunks(source: TransactionSource, event_source: str, chunk_size: int = _CHUNK) -> Iterator[EncodedChunk]:
    """Encode ``source`` in this process, ``chunk_size`` messages at a time."""
    chunk = EncodedChunk()
    for item in source.open():
        if isinstance(item, RejectedRow):
            chunk.rejected.append(item)
            continue
        if isinstance(item, FollowUp):
            chunk.follow_ups.append(EncodedFollowUp(encode(item.payload, item.event_source), item.delay_s, item.kind))
            continue
        chunk.messages.append(encode(item, event_source))
        if len(chunk.messages) >= chunk_size:
            yield chunk
            chunk = EncodedChunk()
    if chunk.messages or chunk.rejected or chunk.follow_ups:
        yield chunk


def _helper(source: TransactionSource, event_source: str, out: mp.Queue) -> None:
    try:
        for chunk in encode_chunks(source, event_source):
            out.put(chunk)
        out.put(None)
    except Exception as error:  # report it to the parent instead of dying silently
        out.put(FraudError(f"reading transactions failed: {error}"))


class BackgroundEncoder:
    """Iterate over encoded chunks produced by a forked helper process.

    Start it (``with BackgroundEncoder(...) as chunks``) before any other thread
    exists in this process, such as kafka-python's sender thread: fork copies
    only the calling thread.
    """

    def __init__(self, source: TransactionSource, event_source: str) -> None:
        context = mp.get_context("fork")
        self._queue: mp.Queue = context.Queue(maxsize=_PREFETCH)
        self._process = context.Process(target=_helper, args=(source, event_source, self._queue), daemon=True,
                                        name="fraud-encoder")

    def __enter__(self) -> Iterator[EncodedChunk]:
        self._process.start()
        return self._chunks()

    def __exit__(self, *exc_info: object) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=5)
        self._queue.close()

    def _chunks(self) -> Iterator[EncodedChunk]:
        while True:
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                if not self._process.is_alive():
                    raise FraudError(f"the encoder process died (exit code {self._process.exitcode})") from None
                continue
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item
