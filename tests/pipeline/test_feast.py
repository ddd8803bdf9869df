"""The Feast repo: point-in-time training rows equal Spark's, online reads equal the latest offline rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_repo.definitions import FEATURE_SERVICE, PROFILE_FEATURES
from fraud.feature_store import apply_and_materialize, open_store
from fraud.features import FEATURE_NAMES
from fraud.settings import Settings
from training_pipeline.prep import PrepResult


@pytest.fixture(scope="module")
def store(prepared: tuple[Settings, PrepResult]):  # -> feast.FeatureStore
    settings, result = prepared
    store = open_store(settings)
    apply_and_materialize(settings, result.split.start, result.split.end, store=store)
    return store


def test_feature_service_names_exactly_the_model_inputs(store) -> None:
    service = store.get_feature_service(FEATURE_SERVICE)
    names = [feature.name for projection in service.feature_view_projections for feature in projection.features]
    assert names == list(FEATURE_NAMES)


def test_point_in_time_training_rows_equal_the_spark_table(store, prepared: tuple[Settings, PrepResult]) -> None:
    _, result = prepared
    table = pd.read_parquet(result.features_path)
    # One row per (user, time): a second transaction of the same user in the same microsecond would be ambiguous.
    table = table.drop_duplicates(["user_id", "event_timestamp"], keep=False)
    sample = table.sample(n=2000, random_state=3)
    entity_df = sample[["user_id", "event_timestamp"]].reset_index(drop=True)
    training = store.get_historical_features(entity_df=entity_df, features=store.get_feature_service(FEATURE_SERVICE)).to_df()
    training["event_timestamp"] = training["event_timestamp"].dt.tz_localize("UTC")  # Spark's session time zone, naive
    merged = sample.merge(training, on=["user_id", "event_timestamp"], suffixes=("_spark", "_feast"))
    assert len(merged) == 2000
    for name in FEATURE_NAMES:
        assert np.allclose(merged[f"{name}_spark"], merged[f"{name}_feast"], rtol=1e-9), name


def test_online_reads_after_materialize_return_each_users_latest_offline_row(store, prepared: tuple[Settings, PrepResult]) -> None:
    _, result = prepared
    table = pd.read_parquet(result.features_path)
    latest = table.sort_values(["event_timestamp", "transaction_id"]).groupby("user_id").tail(1).set_index("user_id")
    users = latest.sample(n=200, random_state=5).index.tolist()
    online = store.get_online_features(
        features=[f"user_activity:{name}" for name in ("transaction_id", *FEATURE_NAMES)],
        entity_rows=[{"user_id": user} for user in users],
    ).to_df().set_index("user_id")
    assert (online.loc[users, "transaction_id"] == latest.loc[users, "transaction_id"]).all()
    for name in FEATURE_NAMES:
        assert np.allclose(online.loc[users, name], latest.loc[users, name], rtol=1e-9), name

    profile = pd.read_parquet(result.profile_path).set_index("user_id")
    profiles_online = store.get_online_features(
        features=[f"user_profile:{name}" for name in PROFILE_FEATURES], entity_rows=[{"user_id": u} for u in users]
    ).to_df().set_index("user_id")
    for name in PROFILE_FEATURES:
        assert np.allclose(profiles_online.loc[users, name], profile.loc[users, name], rtol=1e-9), name


def test_an_unknown_user_has_no_online_features(store) -> None:
    online = store.get_online_features(features=["user_activity:amount"], entity_rows=[{"user_id": "user_999999999"}]).to_dict()
    assert online["amount"] == [None]


def test_training_sets_come_from_spark_with_train_and_valid_sampled_and_test_whole(
        store, prepared: tuple[Settings, PrepResult], tmp_path) -> None:
    from training_pipeline.training_data import build_training_sets

    settings, result = prepared
    capped = settings.model_copy(update={"train_max_rows": 4000, "valid_max_rows": 4000})
    paths = build_training_sets(capped, out_dir=tmp_path)
    frames = {split: pd.read_parquet(path) for split, path in paths.items()}
    for split in ("train", "valid"):
        assert result.rows_per_split[split] > 4000 and 3400 < len(frames[split]) < 4600, split
    assert len(frames["test"]) == result.rows_per_split["test"]
    test = frames["test"]
    assert list(test.columns) == [*FEATURE_NAMES, "fraud"] and not test.isna().any().any()
    table = pd.read_parquet(result.features_path)
    expected = table[table["split"] == "test"].sort_values(["event_timestamp", "user_id"], kind="stable")
    assert np.allclose(test["amount"].sort_values(), expected["amount"].sort_values())
    assert test["fraud"].sum() == expected["fraud"].sum()


def test_the_test_split_is_sampled_down_to_its_cap_before_the_join(
        store, prepared: tuple[Settings, PrepResult], tmp_path) -> None:
    from training_pipeline.training_data import build_training_sets

    settings, result = prepared
    capped = settings.model_copy(update={"test_max_rows": 2000})
    frames = {split: pd.read_parquet(path) for split, path in build_training_sets(capped, out_dir=tmp_path).items()}
    assert result.rows_per_split["test"] > 4000 and 1600 < len(frames["test"]) < 2400
    assert len(frames["train"]) >= result.rows_per_split["train"]  # below FRAUD_TRAIN_MAX_ROWS: whole
    assert list(frames["test"].columns) == [*FEATURE_NAMES, "fraud"] and not frames["test"].isna().any().any()
