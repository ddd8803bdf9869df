"""Shared fixtures: a real Kafka broker for the whole session, unique topics per test.

The broker is the product's own embedded one (`fraud.local_stack`), started in a
temporary data dir on free ports so that a developer's running stack is left
alone. Set FRAUD_KAFKA_BOOTSTRAP to test against a broker you run yourself.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fraud.events import Transaction
from fraud.local_stack.kafka import LocalKafka, create_topics, delete_topics
from fraud.local_stack.redis_server import LocalRedis, RedisEndpoint
from fraud.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_transaction(number: int = 0, **changes: object) -> Transaction:
    """A valid transaction; keyword arguments override fields."""
    fields: dict[str, object] = {
        "transaction_id": f"tx-test-{number}",
        "user_id": f"user_{number % 7}",
        "event_time": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "amount": 12.5,
        "merchant_id": "merchant_1",
        "merchant_category": "grocery",
        "latitude": 48.1,
        "longitude": 11.5,
        "used_chip": True,
        "used_pin_number": False,
        "online_order": False,
    }
    fields.update(changes)
    return Transaction(**fields)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep a developer's FRAUD_* variables and .env file out of every test but the broker address."""
    for name in list(os.environ):
        if name.startswith("FRAUD_") and name != "FRAUD_KAFKA_BOOTSTRAP":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def kafka_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at a live broker: FRAUD_KAFKA_BOOTSTRAP's, or one started for this session."""
    external = os.environ.get("FRAUD_KAFKA_BOOTSTRAP")
    data_dir = tmp_path_factory.mktemp("kafka-session")
    if external:
        yield Settings(kafka_bootstrap=external, data_dir=data_dir, cache_dir=REPO / ".cache", _env_file=None)
        return
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        kafka_controller_port=free_port(),
        data_dir=data_dir,
        cache_dir=REPO / ".cache",
        _env_file=None,
    )
    broker = LocalKafka(settings)
    broker.start()
    try:
        yield settings
    finally:
        broker.stop()


@pytest.fixture
def new_topic(kafka_settings: Settings) -> Iterator[Callable[..., str]]:
    """Factory of uniquely named topics, deleted after the test."""
    created: list[str] = []

    def make(prefix: str = "test", partitions: int = 3) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        create_topics(kafka_settings, {name: partitions})
        created.append(name)
        return name

    yield make
    delete_topics(kafka_settings, created)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisEndpoint]:
    """A real redis-server (with a password) for the whole session; stopped by PID."""
    server = LocalRedis(tmp_path_factory.mktemp("redis"))
    endpoint = server.start()
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """A real S3 API (moto's server) on a free port, for one test."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One local Spark session for the whole test run (start-up costs several seconds)."""
    from training_pipeline.prep import spark_session

    settings = Settings(data_dir=tmp_path_factory.mktemp("spark"), spark_driver_memory="2g", spark_shuffle_partitions=4,
                        _env_file=None)
    session = spark_session(settings, app_name="fraud-tests")
    yield session
    session.stop()
