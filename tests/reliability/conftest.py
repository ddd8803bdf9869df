"""Reliability fixtures: one scratch chaos stack (its own broker, predictor and Feast store) for the whole package.

Its own broker, not the session's: the broker scenario stops and restarts it. Sizes
and outages are the CI versions of `fraud bench chaos`; the worker's group session
timeout is 10 s instead of Faust's 60 s, so a SIGKILLed worker's partitions move on
within the time a CI run has (the bench keeps Faust's default).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.chaos_stack import ChaosStack
from fraud.settings import Settings
from tests.conftest import REPO


@pytest.fixture(scope="session")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    base = Settings(cache_dir=REPO / ".cache", _env_file=None)
    with ChaosStack(base, tmp_path_factory.mktemp("chaos"), known_users=500,
                    worker_env={"BROKER_SESSION_TIMEOUT": "10"}, patience_s=40.0) as stack:
        yield stack
