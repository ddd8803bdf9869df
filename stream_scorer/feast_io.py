"""The worker's Feast traffic: profile reads through a TTL cache, one push per micro-batch.

Feast's SDK is synchronous. Opening the store takes seconds, so it happens on a
helper thread; profile reads (a few milliseconds, rare once the cache is warm)
then run on the event loop itself (see `read_profiles`). Pushes run in a helper
process: the SQLite online store writes row by row in Python, which in the
worker's process would hold its GIL for longer than scoring the batch takes.
The helper exits when the worker does, however the worker ends (`exit_with_parent`),
and not before: it ignores the stop signals a terminal or a supervisor sends the
worker's whole process group. A helper that dies all the same (killed, out of
memory) is replaced by a new one at the next push; the worker goes on scoring.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pandas as pd

from fraud.events import Transaction
from fraud.features import UserProfile
from fraud.settings import Settings
from stream_scorer.faults import TransientFault

log = logging.getLogger(__name__)


class FeastGateway:
    """Profile reads and activity pushes against the Feast store of ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="feast")
        self._pusher = self._new_pusher()

    def _new_pusher(self) -> ProcessPoolExecutor:
        # spawn, not fork: the worker has threads (Kafka clients) that a forked child would inherit half-way.
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_open_in_child, initargs=(self.settings, os.getpid()))

    async def _in_pusher(self, function: Callable, *args: object) -> object:
        """``function(*args)`` in the push process; a broken one (its process died) is replaced before this raises."""
        pusher = self._pusher
        try:
            return await asyncio.get_running_loop().run_in_executor(pusher, function, *args)
        except BrokenProcessPool:
            if self._pusher is pusher:
                pusher.shutdown(wait=False)
                self._pusher = self._new_pusher()  # started by its first submit
            raise

    def _open(self):
        if self._store is None:
            from fraud.feature_store import open_store

            self._store = open_store(self.settings)
        return self._store

    def _read_profiles(self, user_ids: Sequence[str]) -> dict[str, UserProfile]:
        from feature_repo.definitions import PROFILE_FEATURES

        values = self._open().get_online_features(
            features=[f"user_profile:{name}" for name in PROFILE_FEATURES],
            entity_rows=[{"user_id": user_id} for user_id in user_ids],
        ).to_dict()
        found = {}
        for index, user_id in enumerate(values["user_id"]):
            row = [values[name][index] for name in PROFILE_FEATURES]
            if all(value is not None for value in row):
                found[user_id] = UserProfile(*(float(value) for value in row))
        return found

    async def read_profiles(self, user_ids: Sequence[str]) -> dict[str, UserProfile]:
        """Profiles of the users Feast knows (others are absent from the answer).

        On the event loop's own thread, on purpose: a read of a few hundred users takes
        a few milliseconds, but on a helper thread it competed for the GIL with the
        loop's Kafka work and took 30 times as long (measured: 4 ms alone, 110-140 ms).
        """
        try:
            if self._store is None:  # the first open takes seconds: never on the loop
                await asyncio.get_running_loop().run_in_executor(self._thread, self._open)
            return self._read_profiles(list(user_ids))
        except Exception as error:  # noqa: BLE001 - whatever the store raises, it is the store's fault, not the record's
            self._store = None  # open it afresh next time: a store file replaced or repaired is then read anew
            raise TransientFault("feast", f"the online store cannot be read: {type(error).__name__}: {error}") from error

    async def push(self, parts: list[dict]) -> None:
        """Write the users' latest features to the online store through the push source (in the helper process)."""
        await self._in_pusher(_push_in_child, parts)

    async def warm_up(self) -> None:
        """Open the store, then start the push process, now (imports take seconds) rather than on the first batch.

        One after the other: the first score waits for the store, not for the pushes, and
        on two cores a helper importing Feast beside it slowed the store's opening by a second.
        """
        loop, began = asyncio.get_running_loop(), time.perf_counter()
        await loop.run_in_executor(self._thread, self._open)
        log.info("Feast store open after %.1f s", time.perf_counter() - began)
        try:
            await self._in_pusher(_ping)
        except BrokenProcessPool as error:  # pushes are not on the scoring path: score, and start a new one on the first push
            log.warning("the Feast push process died while starting (%s); a new one starts with the first push", error)


def skip_feast_type_checks() -> None:
    """Make typeguard's ``@typechecked`` a no-op in this process, so that importing Feast takes 2 s instead of 6 s.

    Feast decorates 19 of its classes with it, and at import each decoration reads,
    instruments and recompiles its module's source: 6.8 s of the 10 s that
    `import feast` took here under cProfile, and most of opening the store
    (measured without it: import 5.7 -> 2.2 s, open 2.2 -> 0.3 s, first read
    0.6 -> 0.2 s). Those checks are a development aid: typeguard itself turns
    the decorator off under ``python -O``. The worker and its push helper call
    Feast only with arguments their own code builds, so they drop the checks for
    Feast alone (``-O`` would also drop every assert, and want precompiled
    ``.opt-1.pyc`` files the image lacks). Call it before Feast is imported.
    """
    import typeguard

    typeguard.typechecked = _unchecked


def _unchecked(target=None, **options):
    """``@typechecked`` and ``@typechecked(...)`` that return what they decorate."""
    return _unchecked if target is None else target


_child_store = None


def exit_with_parent(parent_pid: int, poll_s: float = 0.25) -> None:
    """Make this helper process exit within ``poll_s`` of ``parent_pid`` ending, even by SIGKILL (no orphan left).

    A daemon thread watches getppid(), which changes the moment the parent dies
    (the orphan is re-parented to init or a subreaper, never to the dead PID).
    Not prctl(PR_SET_PDEATHSIG): Linux sends that signal when the parent
    *thread* that forked us ends, not the parent process. ProcessPoolExecutor
    (spawn, Python 3.11) forks its worker in the thread that first calls
    submit(): the event loop's main thread today, but a pool submitted to or
    rebuilt from an executor thread would have its healthy helper killed when
    that thread ends, and stay broken. A false kill costs more than a quarter
    of a second's delay; and the thread works off Linux too. multiprocessing's
    resource tracker needs nothing: it exits once the last holder of its pipe
    (the worker, then this helper) has gone.
    """
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)  # nobody is left to report to; a push cut short is an uncommitted SQLite transaction

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _open_in_child(settings: Settings, parent_pid: int) -> None:
    global _child_store
    from fraud.feature_store import open_store

    exit_with_parent(parent_pid)  # first: opening the store takes seconds, and the worker may die meanwhile
    # A stop (Ctrl-C, or `fraud stack down`'s SIGTERM) goes to the worker's whole process group. The worker
    # decides when it ends; this helper follows it (above) rather than dying under a push in flight.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    skip_feast_type_checks()
    os.nice(10)  # when CPU is short, scoring goes first; pushes then merge more rows and run less often
    _child_store = open_store(settings)
    # Feast's modules and the open store live as long as the process: out of the collector's sight, its full
    # collections (once a second under load) took 200-400 ms of CPU each, on cores the worker shares.
    gc.collect()
    gc.freeze()


def _push_in_child(parts: list[dict]) -> None:
    from feast.data_source import PushMode

    from feature_repo.definitions import PUSH_SOURCE

    _child_store.push(PUSH_SOURCE, activity_frame(parts), to=PushMode.ONLINE)


def activity_frame(parts: list[dict]) -> pd.DataFrame:
    """The push source's rows from queued batches (`latest_per_user` columns): the latest row per user wins."""
    frame = pd.concat([pd.DataFrame(part) for part in parts], ignore_index=True).drop_duplicates("user_id", keep="last")
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], unit="us", utc=True)
    return frame.reset_index(drop=True)


def _ping() -> bool:
    return _child_store is not None


class CoalescingPusher:
    """Feast pushes off the scoring path: one push in flight, spaced out, and a bounded queue.

    Every push has a fixed cost (registry lookups, Arrow to protobuf, a SQLite
    commit) on top of its rows, so many small pushes cost far more than a few big
    ones. Scoring never waits for a push; rows that arrive while one runs, or
    before the next may start, are merged into the next (the latest row per user wins).

    A push starts at least ``interval_s`` after the one before started, and at least
    its duration / ``busy_fraction`` after it: a push that took 2 s with 0.25 waits
    until 8 s after its start. The push process then keeps to about that share of a
    core, and leaves the rest to scoring; under heavy load Feast lags a few push
    durations behind the stream. Rows waiting beyond ``max_pending_rows`` are dropped,
    the oldest batches first (``on_dropped``): their users keep their older values in
    Feast until their next transaction is pushed. The worker's own scores never read them.
    """

    def __init__(self, push: Callable[[list[dict]], Awaitable[None]],
                 on_failure: Callable[[Exception, int], None] = lambda error, batches: None, interval_s: float = 0.0,
                 busy_fraction: float = 1.0, max_pending_rows: int = 1_000_000,
                 on_dropped: Callable[[int], None] = lambda rows: None) -> None:
        if not 0 < busy_fraction <= 1:
            raise ValueError(f"busy_fraction must be in (0, 1], not {busy_fraction}")
        self._push, self._on_failure, self._on_dropped = push, on_failure, on_dropped
        self.interval_s, self.busy_fraction, self.max_pending_rows = interval_s, busy_fraction, max_pending_rows
        self._pending: deque[dict] = deque()
        self._pending_rows = 0
        self._running: asyncio.Task | None = None
        self._next_start = -math.inf

    def submit(self, rows: dict) -> None:
        """Queue one batch's rows (columns, see `latest_per_user`); returns at once."""
        self._pending.append(rows)
        self._pending_rows += len(rows["user_id"])
        while self._pending_rows > self.max_pending_rows and len(self._pending) > 1:
            dropped = len(self._pending.popleft()["user_id"])
            self._pending_rows -= dropped
            self._on_dropped(dropped)
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        while self._pending:
            wait = self._next_start - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            started = time.monotonic()
            parts, self._pending, self._pending_rows = list(self._pending), deque(), 0
            try:
                await self._push(parts)
            except Exception as error:  # the scores do not depend on it; these users' next rows push again
                self._on_failure(error, len(parts))
            took = time.monotonic() - started
            self._next_start = started + max(self.interval_s, took / self.busy_fraction)

    async def flush(self) -> None:
        """Wait until everything submitted has been pushed (or failed)."""
        while self._running is not None and not self._running.done():
            await self._running


def stand_in_profile(transaction: Transaction) -> UserProfile:
    """For a card the pipeline has not profiled yet: its first transaction seen stands in for home and typical amount."""
    return UserProfile(transaction.latitude, transaction.longitude, transaction.amount)


class ProfileCache:
    """Users' profiles, read from Feast at most once per ``ttl_s`` per user (profiles change once per pipeline run).

    At most ``max_users`` profiles are kept, the least recently wanted evicted
    first, so a worker's memory does not grow with every card it has ever seen.
    An evicted user's next transaction reads Feast again, like an expired one.
    """

    def __init__(self, read: Callable, ttl_s: float, max_users: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_users < 1:
            raise ValueError(f"max_users must be at least 1, not {max_users}")
        self._read, self.ttl_s, self.max_users, self._clock = read, ttl_s, max_users, clock
        self._entries: OrderedDict[str, tuple[float, UserProfile]] = OrderedDict()  # least recently wanted first
        self.misses = 0  # users read from Feast

    def __len__(self) -> int:
        return len(self._entries)

    async def profiles(self, transactions: Sequence[Transaction]) -> dict[str, UserProfile]:
        """A profile for every user of ``transactions``: cached, else from Feast, else a stand-in."""
        now = self._clock()
        wanted: dict[str, Transaction] = {}
        for transaction in transactions:
            wanted.setdefault(transaction.user_id, transaction)
        entries, found_here, stale = self._entries, {}, []
        for user in wanted:
            entry = entries.get(user)
            if entry is None or entry[0] <= now:
                stale.append(user)
            else:
                entries.move_to_end(user)
                found_here[user] = entry[1]
        if stale:
            found = await self._read(stale)
            self.misses += len(stale)
            expires = now + self.ttl_s
            for user in stale:
                profile = found.get(user)
                if profile is None:
                    profile = stand_in_profile(wanted[user])
                entries[user] = (expires, profile)
                entries.move_to_end(user)  # an expired entry keeps its place when replaced
                found_here[user] = profile
        while len(entries) > self.max_users:  # a batch wider than the cache is still answered whole
            entries.popitem(last=False)
        return {user: found_here[user] for user in wanted}
