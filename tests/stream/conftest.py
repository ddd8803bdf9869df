"""Stream fixtures: the real broker, a real predictor, Feast profiles, and real `python -m stream_scorer` workers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pandas as pd
import pytest

from fraud.local_stack.kafka import create_topics, delete_topics
from fraud.local_stack.worker import scrape
from fraud.settings import Settings, settings_env
from tests.conftest import REPO, free_port
from tests.predictor.conftest import Predictor, register


def put_profiles(settings: Settings, profiles: dict[str, tuple[float, float, float]]) -> None:
    """Write users' batch profiles (home lat, home lon, median amount) to the Feast online store."""
    from feature_repo.definitions import feast_objects
    from fraud.feature_store import open_store

    store = open_store(settings)
    store.apply(feast_objects(settings))
    now = datetime.now(UTC)
    frame = pd.DataFrame([{"user_id": user, "home_latitude": lat, "home_longitude": lon, "median_purchase_amount": median,
                           "event_timestamp": now} for user, (lat, lon, median) in profiles.items()])
    store.write_to_online_store("user_profile", frame)


def _child_env(settings: Settings) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")} | settings_env(settings)


class Worker:
    """One `python -m stream_scorer` process with ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.log_path = settings.data_dir / f"worker-{uuid.uuid4().hex[:6]}.log"
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "stream_scorer"], cwd=REPO, env=_child_env(settings),
                                            stdout=log, stderr=subprocess.STDOUT)
        self.wait_for(lambda m: m is not None, "metrics endpoint")

    def metrics(self) -> dict[str, float] | None:
        return scrape(self.settings)

    def wait_for(self, check: Callable[[dict[str, float] | None], bool], what: str, timeout_s: float = 90) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited ({self.process.returncode}): {self.log_tail()}")
            metrics = self.metrics()
            if check(metrics):
                return metrics or {}
            time.sleep(0.3)
        raise AssertionError(f"worker: no {what} after {timeout_s}s; metrics {self.metrics()}; log: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text()[-4000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def stream_settings(kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of one module's scoring stack: its own topics, ports, data dir and consumer group; a tiny model."""
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_bootstrap=kafka_settings.kafka_bootstrap, data_dir=tmp_path_factory.mktemp("stream"), _env_file=None,
        topic_transactions=f"transactions-{suffix}", topic_scores=f"scores-{suffix}", topic_dlq=f"dlq-{suffix}",
        topic_labels=f"labels-{suffix}", topic_retrain=f"retrain-{suffix}", partitions_scores=3, scorer_app_id=f"scorer-{suffix}",
        predictor_port=free_port(), scorer_metrics_port=free_port(), predictor_backoff_max_s=0.5,
    )
    create_topics(settings)
    register(settings, seed=1)
    yield settings
    delete_topics(settings, list(settings.topic_partitions))


@pytest.fixture(scope="module")
def predictor(stream_settings: Settings) -> Iterator[Predictor]:
    served = Predictor(stream_settings)
    deadline = time.monotonic() + 60
    while httpx.get(f"{served.url}/v2/health/ready", timeout=2).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.3)
    yield served
    served.stop()
