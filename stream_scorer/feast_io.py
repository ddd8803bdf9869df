"""The worker's Feast traffic: profile reads through a TTL cache, one push per micro-batch.

Feast's SDK is synchronous, and its SQLite online store keeps a connection per
thread, so every call runs on one dedicated thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from fraud.events import Transaction
from fraud.features import UserProfile
from fraud.settings import Settings

log = logging.getLogger(__name__)


class FeastGateway:
    """Profile reads and activity pushes against the Feast store of ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="feast")

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

    def _push(self, frame: pd.DataFrame) -> None:
        from feast.data_source import PushMode

        from feature_repo.definitions import PUSH_SOURCE

        self._open().push(PUSH_SOURCE, frame, to=PushMode.ONLINE)

    async def read_profiles(self, user_ids: Sequence[str]) -> dict[str, UserProfile]:
        """Profiles of the users Feast knows (others are absent from the answer)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._read_profiles, list(user_ids))

    async def push(self, frame: pd.DataFrame) -> None:
        """Write the users' latest features to the online store through the push source."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._push, frame)

    async def warm_up(self) -> None:
        """Open the store now (imports and registry load take seconds) rather than on the first batch."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._open)


def stand_in_profile(transaction: Transaction) -> UserProfile:
    """For a card the pipeline has not profiled yet: its first transaction seen stands in for home and typical amount."""
    return UserProfile(transaction.latitude, transaction.longitude, transaction.amount)


class ProfileCache:
    """Users' profiles, read from Feast at most once per ``ttl_s`` per user (profiles change once per pipeline run)."""

    def __init__(self, read: Callable, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._read, self.ttl_s, self._clock = read, ttl_s, clock
        self._entries: dict[str, tuple[float, UserProfile]] = {}
        self.misses = 0  # users read from Feast
        self.stand_ins = 0  # users Feast did not know

    async def profiles(self, transactions: Sequence[Transaction]) -> dict[str, UserProfile]:
        """A profile for every user of ``transactions``: cached, else from Feast, else a stand-in."""
        now = self._clock()
        wanted: dict[str, Transaction] = {}
        for transaction in transactions:
            wanted.setdefault(transaction.user_id, transaction)
        stale = [user for user in wanted if (entry := self._entries.get(user)) is None or entry[0] <= now]
        if stale:
            found = await self._read(stale)
            self.misses += len(stale)
            for user in stale:
                profile = found.get(user)
                if profile is None:
                    self.stand_ins += 1
                    profile = stand_in_profile(wanted[user])
                self._entries[user] = (now + self.ttl_s, profile)
        return {user: self._entries[user][1] for user in wanted}
