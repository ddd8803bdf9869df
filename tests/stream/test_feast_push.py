"""The worker's Feast push process against a real (SQLite) Feast store: it outlives stop signals, and a dead one is replaced."""

from __future__ import annotations

import asyncio
import os
import signal
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil
import pytest

from feature_repo.definitions import feast_objects
from fraud.feature_store import open_store
from fraud.features import FEATURE_NAMES
from fraud.settings import Settings
from stream_scorer.batch import latest_per_user
from stream_scorer.feast_io import FeastGateway
from tests.conftest import make_transaction


def _rows(value: float) -> dict[str, object]:
    """One row for user_1 whose every feature is ``value``."""
    transaction = make_transaction(1, user_id="user_1", event_time=datetime.now(UTC))
    return latest_per_user([transaction], {name: np.array([value]) for name in FEATURE_NAMES})


def _stored(settings: Settings) -> float | None:
    values = open_store(settings).get_online_features(features=[f"user_activity:{FEATURE_NAMES[0]}"],
                                                      entity_rows=[{"user_id": "user_1"}]).to_dict()
    return values[FEATURE_NAMES[0]][0]


def _helper_pid(gateway: FeastGateway) -> int:
    (pid,) = gateway._pusher._processes  # the pool's one process, by PID
    return pid


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_push_process_ignores_stop_signals_and_a_killed_one_is_replaced(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, _env_file=None)
    open_store(settings).apply(feast_objects(settings))
    gateway = FeastGateway(settings)

    async def scenario() -> tuple[int, int]:
        await gateway.warm_up()
        first = _helper_pid(gateway)
        # What Ctrl-C or `fraud stack down` sends to the worker's process group: the helper stays for the worker.
        os.kill(first, signal.SIGINT)
        os.kill(first, signal.SIGTERM)
        await asyncio.sleep(1.0)
        assert _alive(first), "the push process died of a stop signal meant for the worker"
        await gateway.push([_rows(1.0)])
        assert _stored(settings) == 1.0

        os.kill(first, signal.SIGKILL)  # dies under the worker anyway (say, out of memory)
        with pytest.raises(BrokenProcessPool):
            await gateway.push([_rows(2.0)])
        await gateway.push([_rows(3.0)])  # in a new process
        return first, _helper_pid(gateway)

    try:
        first, second = asyncio.run(scenario())
    finally:
        gateway._pusher.shutdown()
        gateway._thread.shutdown()
    assert second != first
    assert _stored(settings) == 3.0
