"""The worker's Feast plumbing without Feast: the bounded profile cache, and helpers that die with their parent."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import psutil
import pytest

from fraud.features import UserProfile
from stream_scorer.feast_io import ProfileCache
from tests.conftest import REPO, make_transaction


class FakeFeast:
    """Knows every user but ``unknown``; records each read."""

    def __init__(self, unknown: str = "") -> None:
        self.reads: list[list[str]] = []
        self.unknown = unknown

    async def __call__(self, users: list[str]) -> dict[str, UserProfile]:
        self.reads.append(list(users))
        return {user: UserProfile(48.0, 11.0, float(len(self.reads))) for user in users if user != self.unknown}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wanted(cache: ProfileCache, *users: str) -> dict[str, UserProfile]:
    transactions = [make_transaction(n, user_id=user, latitude=10.0 + n, longitude=20.0, amount=5.0 + n)
                    for n, user in enumerate(users)]
    return asyncio.run(cache.profiles(transactions))


def test_the_least_recently_wanted_user_is_evicted_first() -> None:
    feast = FakeFeast()
    cache = ProfileCache(feast, ttl_s=60, max_users=2)
    wanted(cache, "user_1")
    wanted(cache, "user_2")
    wanted(cache, "user_1")  # a hit: user_1 becomes the most recent, user_2 the least
    wanted(cache, "user_3")  # evicts user_2
    assert len(cache) == 2 and cache.misses == 3
    wanted(cache, "user_1", "user_3")
    assert feast.reads == [["user_1"], ["user_2"], ["user_3"]]  # user_1 and user_3 were still cached
    wanted(cache, "user_2")  # read again, and evicts user_1 (user_3 was wanted after it)
    wanted(cache, "user_3")
    wanted(cache, "user_1")
    assert feast.reads == [["user_1"], ["user_2"], ["user_3"], ["user_2"], ["user_1"]] and cache.misses == 5


def test_a_batch_wider_than_the_cache_is_still_answered_whole() -> None:
    feast = FakeFeast(unknown="user_3")
    cache = ProfileCache(feast, ttl_s=60, max_users=2)
    answer = wanted(cache, *(f"user_{n}" for n in range(5)), "user_0")
    assert list(answer) == [f"user_{n}" for n in range(5)]
    assert answer["user_3"] == UserProfile(13.0, 20.0, 8.0)  # not in Feast: its first transaction stands in
    assert len(cache) == 2 and cache.misses == 5
    wanted(cache, "user_3", "user_4")  # the batch's last two users are the ones kept
    assert len(feast.reads) == 1


def test_the_ttl_still_applies_and_an_expired_profile_is_read_anew() -> None:
    feast, clock = FakeFeast(), Clock()
    cache = ProfileCache(feast, ttl_s=60, max_users=2, clock=clock)
    first = wanted(cache, "user_1", "user_2")
    clock.now += 59
    assert wanted(cache, "user_1", "user_2") == first and cache.misses == 2
    clock.now += 1
    assert wanted(cache, "user_1")["user_1"].median_purchase_amount == 2.0  # read again: the second read's profile
    assert cache.misses == 3
    wanted(cache, "user_3")  # user_2 has expired too, but user_1 was refreshed later: user_2 is evicted
    assert feast.reads == [["user_1", "user_2"], ["user_1"], ["user_3"]]
    clock.now += 1
    wanted(cache, "user_1", "user_3")
    assert len(feast.reads) == 3


def test_a_failed_read_changes_nothing() -> None:
    async def down(users: list[str]) -> dict[str, UserProfile]:
        raise ConnectionError("online store locked")

    cache = ProfileCache(down, ttl_s=60, max_users=2)
    with pytest.raises(ConnectionError):
        wanted(cache, "user_1")
    assert len(cache) == 0 and cache.misses == 0


def test_the_cache_holds_at_least_one_user() -> None:
    with pytest.raises(ValueError, match="max_users"):
        ProfileCache(FakeFeast(), ttl_s=60, max_users=0)


_HELPER = ("import sys, time\nfrom stream_scorer.feast_io import exit_with_parent\n"
           "exit_with_parent(int(sys.argv[1]), poll_s=0.05)\ntime.sleep(60)\n")


def test_a_helper_whose_parent_is_gone_exits_at_once() -> None:
    helper = subprocess.run([sys.executable, "-c", _HELPER, "1"], cwd=REPO, timeout=30)  # init is not its parent
    assert helper.returncode == 1


def test_a_helper_lives_with_its_parent_and_exits_when_it_is_killed() -> None:
    # The parent: a process that starts the helper, passing its own PID, then waits.
    parent = subprocess.Popen([sys.executable, "-c", "import os, subprocess, sys, time\n"
                               f"subprocess.Popen([sys.executable, '-c', {_HELPER!r}, str(os.getpid())])\n"
                               "time.sleep(60)\n"], cwd=REPO)
    helpers: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 20
        while not helpers and time.monotonic() < deadline:
            helpers = psutil.Process(parent.pid).children()
            time.sleep(0.05)
        time.sleep(3)  # imports and a few polls: still there while its parent is
        assert _running(helpers[0])
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 5
        while _running(helpers[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(helpers[0]), "the helper outlived its parent by 5 s"
    finally:
        parent.kill()
        parent.wait()
        for helper in helpers:
            if _running(helper):
                helper.kill()


def _running(process: psutil.Process) -> bool:
    """A zombie has exited; only its status waits for a reaper (init may be slow to reap it, or never)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_worker_imports_feast_without_its_import_time_type_checks() -> None:
    """Feast's @typechecked classes re-compile their modules at import (seconds); the worker turns that off."""
    probe = """
import sys
from stream_scorer.feast_io import skip_feast_type_checks
if sys.argv[1] == "skip":
    skip_feast_type_checks()
from feast import Field
from feast.types import Float32
try:
    Field(name=1, dtype=Float32)  # a wrong type that only the instrumented class refuses
except Exception as error:
    print(type(error).__name__)
else:
    print("unchecked")
"""
    answers = [subprocess.run([sys.executable, "-c", probe, mode], capture_output=True, text=True, check=True,
                              cwd=REPO).stdout.strip() for mode in ("skip", "keep")]
    assert answers == ["unchecked", "TypeCheckError"]
