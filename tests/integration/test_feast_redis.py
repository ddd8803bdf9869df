"""The cluster feature store (feature_repo/feature_store.cluster.yaml) against a real redis-server and a real S3 API:
the worker pushes users' features through its gateway, and the predictor's user_id lookup and the worker's profile
read get them back from Redis."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from feature_repo.definitions import feast_objects
from fraud.errors import FraudError
from fraud.feature_store import open_store
from fraud.features import FEATURE_NAMES, UserProfile
from fraud.local_stack.redis_server import RedisEndpoint
from fraud.settings import Settings
from fraud.storage import minio_client
from predictor.model import FraudModel
from stream_scorer.batch import latest_per_user
from stream_scorer.feast_io import FeastGateway
from tests.conftest import make_transaction

S3_KEYS = {"s3_access_key": "testing", "s3_secret_key": "testing-secret-key"}


@pytest.fixture
def cluster_settings(tmp_path: Path, redis_server: RedisEndpoint, s3_endpoint: str) -> Settings:
    """Settings selecting the cluster file, on a Redis database of its own (this test empties it)."""
    return Settings(data_dir=tmp_path, feast_config="feature_store.cluster.yaml", feast_redis_address=redis_server.address,
                    feast_redis_password=redis_server.password, feast_registry_uri="s3://feast/fraud/registry.db",
                    s3_endpoint=s3_endpoint, **S3_KEYS, _env_file=None)


def _redis(endpoint: RedisEndpoint) -> redis.Redis:
    return redis.Redis(host=endpoint.host, port=endpoint.port, password=endpoint.password)


def test_pushed_features_round_trip_through_redis(cluster_settings: Settings, redis_server: RedisEndpoint) -> None:
    client = _redis(redis_server)
    client.flushdb()
    store = open_store(cluster_settings)
    assert store.config.online_store.type == "redis"
    store.apply(feast_objects(cluster_settings))  # what `fraud pipeline features` does before it materializes

    transactions = [make_transaction(number, user_id=f"user_{number}",
                                     event_time=datetime.now(UTC) - timedelta(minutes=5 - number)) for number in range(3)]
    features = {name: np.arange(3, dtype=np.float64) + 10.0 * column for column, name in enumerate(FEATURE_NAMES)}
    profiles = pd.DataFrame({"user_id": ["user_0", "user_1"], "home_latitude": [48.1, 52.5],
                             "home_longitude": [11.5, 13.4], "median_purchase_amount": [25.0, 80.0],
                             "event_timestamp": pd.Timestamp.now(tz="UTC")})
    store.write_to_online_store("user_profile", profiles)  # what materializing the prep step's profiles writes

    gateway = FeastGateway(cluster_settings)
    try:
        async def push_then_read() -> dict[str, UserProfile]:
            await gateway.push([latest_per_user(transactions, features)])
            return await gateway.read_profiles(["user_0", "user_1", "user_unknown"])

        read = asyncio.run(push_then_read())
    finally:
        gateway._pusher.shutdown()
        gateway._thread.shutdown()

    assert read == {"user_0": UserProfile(48.1, 11.5, 25.0), "user_1": UserProfile(52.5, 13.4, 80.0)}
    model = FraudModel(cluster_settings)  # its user_id lookup, as `{"user_id": ...}` requests use it
    for row in range(3):
        assert model._online_features(f"user_{row}", list(FEATURE_NAMES)) == [features[name][row] for name in FEATURE_NAMES]
    assert model._online_features("user_unknown", list(FEATURE_NAMES)) is None
    # Redis holds them (a hash per user, fields per feature view), and the reads came from there: emptied, it has none.
    assert client.dbsize() == 3
    client.flushdb()
    assert model._online_features("user_0", list(FEATURE_NAMES)) is None
    assert not (cluster_settings.data_dir / "feast" / "online_store.db").exists()
    registry = minio_client(cluster_settings.s3_endpoint, "testing", "testing-secret-key").stat_object("feast", "fraud/registry.db")
    assert registry.size > 0


def test_the_cluster_file_names_the_setting_it_lacks(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, feast_config="feature_store.cluster.yaml", _env_file=None)
    with pytest.raises(FraudError, match="FRAUD_FEAST_REGISTRY_URI"):
        open_store(settings)


def _prepared_rows(features_dir: Path, now: pd.Timestamp) -> pd.DataFrame:
    """A tiny prep output: two transactions per user (a day apart) and a profile each, as Spark's Parquet would be."""
    features_dir.mkdir(parents=True)
    users = ["user_0", "user_1", "user_2"]
    activity = pd.DataFrame({"user_id": users * 2, "transaction_id": [f"tx-{n}" for n in range(6)],
                             "event_timestamp": [now - pd.Timedelta(days=2)] * 3 + [now - pd.Timedelta(days=1)] * 3,
                             "fraud": 0, "split": "train"})
    for column, name in enumerate(FEATURE_NAMES):
        activity[name] = np.arange(6, dtype=np.float64) + 10.0 * column
    activity.to_parquet(features_dir / "transaction_features.parquet", coerce_timestamps="us")
    pd.DataFrame({"user_id": users, "home_latitude": [48.1, 52.5, 40.4], "home_longitude": [11.5, 13.4, -3.7],
                  "median_purchase_amount": [25.0, 80.0, 12.0], "event_timestamp": now - pd.Timedelta(days=3)},
                 ).to_parquet(features_dir / "user_profile.parquet", coerce_timestamps="us")
    return activity


def test_the_cluster_file_reads_the_same_definitions_with_spark_and_materializes_into_redis(
        cluster_settings: Settings, redis_server: RedisEndpoint, spark: object, tmp_path: Path) -> None:
    from fraud.feature_store import apply_and_materialize

    _redis(redis_server).flushdb()
    settings = cluster_settings.model_copy(update={"features_uri": str(tmp_path / "features")})
    now = pd.Timestamp.now(tz="UTC").floor("s")
    activity = _prepared_rows(tmp_path / "features", now)
    store = open_store(settings)
    assert store.config.offline_store.type == "spark"
    assert store.config.offline_store.spark_conf["spark.master"] == settings.spark_master  # the prep step's Spark
    apply_and_materialize(settings, (now - pd.Timedelta(days=3)).to_pydatetime(), now.to_pydatetime(), store=store)

    online = store.get_online_features(features=["user_activity:transaction_id", "user_profile:home_latitude"],
                                       entity_rows=[{"user_id": f"user_{n}"} for n in range(3)]).to_dict()
    assert online["transaction_id"] == ["tx-3", "tx-4", "tx-5"]  # each user's latest row, from Redis
    assert online["home_latitude"] == [48.1, 52.5, 40.4]
    # Point in time, through Spark: between a user's two rows, the earlier one.
    entity_df = pd.DataFrame({"user_id": ["user_1"], "event_timestamp": [now - pd.Timedelta(hours=36)]})
    history = store.get_historical_features(entity_df=entity_df, features=["user_activity:amount"]).to_df()
    assert history["amount"].tolist() == [activity.loc[1, "amount"]]
