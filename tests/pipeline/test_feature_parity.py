"""Batch (Spark, each user's rows sorted, then numpy) and stream (incremental state) give every transaction the same features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from fraud.events import Transaction
from fraud.features import FEATURE_NAMES, UserProfile, stream_features
from fraud.settings import Settings
from training_pipeline.prep import PrepResult


def replay_stream(raw_transactions: Path, profile_path: Path, batch_size: int = 500) -> pd.DataFrame:
    """What the stream worker computes: events in (event_time, transaction_id) order, in micro-batches."""
    profiles = {
        row.user_id: UserProfile(row.home_latitude, row.home_longitude, row.median_purchase_amount)
        for row in pd.read_parquet(profile_path).itertuples()
    }
    rows = pq.read_table(raw_transactions).drop_columns(["fraud"]).to_pylist()
    events = sorted((Transaction.model_validate(row) for row in rows), key=lambda t: (t.event_time, t.transaction_id))
    states: dict[str, dict] = {}
    frames = []
    for start in range(0, len(events), batch_size):
        batch = events[start:start + batch_size]
        computed = stream_features(batch, states, profiles)
        states.update(computed.states)
        frames.append(pd.DataFrame(computed.features, index=[t.transaction_id for t in batch]))
    return pd.concat(frames)


def test_every_feature_of_every_transaction_agrees(prepared: tuple[Settings, PrepResult]) -> None:
    settings, result = prepared
    batch = pd.read_parquet(result.features_path).set_index("transaction_id")
    stream = replay_stream(settings.raw_dir / "transactions.parquet", result.profile_path)
    assert len(stream) >= 50_000
    assert sorted(stream.index) == sorted(batch.index)
    batch = batch.loc[stream.index]
    mismatches = {}
    for name in FEATURE_NAMES:
        close = np.isclose(stream[name].to_numpy(), batch[name].to_numpy(), rtol=1e-6, atol=1e-9)
        if not close.all():
            where = np.flatnonzero(~close)[:3]
            mismatches[name] = (int((~close).sum()), stream[name].iloc[where].tolist(), batch[name].iloc[where].tolist())
    assert not mismatches, mismatches
    # Not vacuous: the history features really vary.
    assert batch["history_count"].max() > 20 and batch["repeat_retailer"].mean() > 0.2
    assert (batch["distance_from_last_transaction"] == -1.0).sum() == batch.reset_index()["user_id"].nunique()


def test_splits_are_cut_by_time_never_sampled(prepared: tuple[Settings, PrepResult]) -> None:
    _, result = prepared
    features = pd.read_parquet(result.features_path)
    order = ["profile", "train", "valid", "test"]
    spans = features.groupby("split")["event_timestamp"].agg(["min", "max"]).loc[order]
    for earlier, later in zip(order, order[1:], strict=False):
        assert spans.loc[earlier, "max"] < spans.loc[later, "min"]
    assert set(result.rows_per_split) == set(order) and all(result.rows_per_split[s] > 1000 for s in order)
    assert features["event_timestamp"].dt.tz is not None  # written as UTC, read back as UTC


def test_profiles_use_only_the_profile_window(prepared: tuple[Settings, PrepResult]) -> None:
    settings, result = prepared
    raw = pd.read_parquet(settings.raw_dir / "transactions.parquet")
    early = raw[raw["event_time"] < pd.Timestamp(result.split.profile_end)]
    expected = early.groupby("user_id")["amount"].median()
    profile = pd.read_parquet(result.profile_path).set_index("user_id")
    assert len(profile) == 3000
    common = expected.index
    assert np.allclose(profile.loc[common, "median_purchase_amount"], expected.loc[common])
