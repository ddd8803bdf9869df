"""Retry what meets a `TransientFault` until it succeeds; consumption pauses while it keeps failing.

This is the one retry policy of the worker (tenacity, exponential backoff):
the first few failures are retried quickly, as a predictor restart or a broker
leader change heals in well under a second; after ``retries`` failures the
worker is *waiting* for the dependency (metrics, log, `fraud stack status`), and
the same work is retried at the longest backoff until it succeeds. Nothing is
skipped and nothing is made up meanwhile. Any other exception passes through at
once: it is not an outage, and waiting would not heal it.

Consumption pauses because the agent holds its batch: the stream's buffer
(Faust's ``stream_buffer_maxsize``) fills and Faust stops fetching. Partitions
are deliberately not paused through Faust's `pause_partitions`: records Faust had
already fetched for a partition it pauses are skipped, and on resume it takes
the skipped offsets for a gap and commits past them (records lost, see
tests/reliability).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from stream_scorer.faults import TransientFault
from stream_scorer.metrics import ScorerMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")


class Abandoned(BaseException):
    """The worker is stopping while work waits for a dependency: the batch is left without an outcome.

    A BaseException, so that no `except Exception` mistakes it for a record's fault;
    the agent holds the batch's offsets back, and the next worker scores it.
    """


class Backpressure:
    """Runs operations until they succeed; ``on_wait(dependency)`` is told when the waiting starts."""

    def __init__(self, retries: int, backoff_max_s: float, metrics: ScorerMetrics,
                 on_wait: Callable[[str], None] = lambda dependency: None) -> None:
        self.retries, self.metrics, self._on_wait = retries, metrics, on_wait
        self._wait = wait_exponential(multiplier=min(0.05, backoff_max_s), max=backoff_max_s)
        self.waiting_for: str | None = None  # the dependency the worker waits for
        self._stopping = asyncio.Event()

    async def run(self, operation: Callable[[], Awaitable[T]]) -> T:
        """``await operation()``, retried on TransientFault for as long as it takes (or until `stop`)."""
        retrying = AsyncRetrying(retry=retry_if_exception_type(TransientFault), wait=self._wait, sleep=self._sleep,
                                 stop=lambda state: self._stopping.is_set(), before_sleep=self._failed, reraise=True)
        try:
            result = await retrying(operation)
        except TransientFault as fault:
            if self._stopping.is_set():
                raise Abandoned(str(fault)) from fault
            raise
        if self.waiting_for is not None:
            log.warning("%s answers again: consumption resumed", self.waiting_for)
            self.metrics.waiting_for.labels(self.waiting_for).set(0)
            self.metrics.paused.set(0)
            self.waiting_for = None
        return result

    def stop(self) -> None:
        """The worker stops: work still waiting for a dependency gives up at its next attempt (`Abandoned`)."""
        self._stopping.set()

    async def _sleep(self, seconds: float) -> None:
        """The backoff, cut short by `stop`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _failed(self, state: RetryCallState) -> None:
        fault = state.outcome.exception()
        dependency = fault.dependency if isinstance(fault, TransientFault) else "unknown"
        self.metrics.dependency_failures.labels(dependency).inc()
        if dependency == "predictor":
            self.metrics.predictor_failures.inc()
        if state.attempt_number > self.retries and self.waiting_for is None:
            self.waiting_for = dependency
            self.metrics.waiting_for.labels(dependency).set(1)
            self.metrics.paused.set(1)
            log.error("%s failed %d times (%s): consumption paused until it answers", dependency,
                      state.attempt_number, fault)
            self._on_wait(dependency)
        elif self.waiting_for is None or state.attempt_number % 20 == 0:
            log.warning("%s (attempt %d, retrying)", fault, state.attempt_number)
