"""The synthetic data generator: deterministic, realistic base rate, and a fraud signal in what the model sees."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from fraud.datagen import GenerationSpec, generate
from fraud.events import Transaction
from fraud.features import haversine_km


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    out = tmp_path_factory.mktemp("gen")
    generate(GenerationSpec(users=20_000, days=30, seed=4), out)
    return pd.read_parquet(out / "users.parquet"), pd.read_parquet(out / "transactions.parquet")


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    spec = GenerationSpec(users=500, seed=9)
    generate(spec, tmp_path / "a")
    generate(spec, tmp_path / "b")
    generate(GenerationSpec(users=500, seed=10), tmp_path / "c")
    a, b, c = (pq.read_table(tmp_path / d / "transactions.parquet") for d in "abc")
    assert a.equals(b)
    assert not a.equals(c)


def test_shape_and_validity(baseline: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    users, transactions = baseline
    assert len(users) == 20_000 and users["user_id"].is_unique
    per_user = transactions.groupby("user_id").size()
    assert per_user.min() >= 1 and 15 <= per_user.mean() <= 21  # 1..34 per user, plus fraud bursts
    assert transactions["transaction_id"].is_unique
    assert transactions["event_time"].is_monotonic_increasing
    assert transactions["event_time"].dt.tz is not None
    rows = transactions.drop(columns=["fraud"]).head(2000).to_dict("records")
    assert all(Transaction.model_validate(row) for row in rows)  # every row is a valid event


def test_base_rate_is_realistic(baseline: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    rate = baseline[1]["fraud"].mean()
    assert 0.005 <= rate <= 0.05


def test_fraud_differs_in_what_the_model_sees_but_not_perfectly(baseline: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    users, tx = baseline
    tx = tx.merge(users, on="user_id")
    tx["from_home"] = haversine_km(tx["latitude"], tx["longitude"], tx["home_latitude"], tx["home_longitude"])
    tx["card_absent"] = tx["online_order"] & ~tx["used_chip"] & ~tx["used_pin_number"]
    tx["ratio"] = tx["amount"] / tx.groupby("user_id")["amount"].transform("median")
    tx["gap_min"] = tx.groupby("user_id")["event_time"].diff().dt.total_seconds() / 60
    fraud, honest = tx[tx["fraud"]], tx[~tx["fraud"]]
    assert (fraud["from_home"] > 200).mean() > 0.5 > (honest["from_home"] > 200).mean() + 0.4
    assert fraud["ratio"].median() > 2 * honest["ratio"].median()
    assert fraud["card_absent"].mean() > honest["card_absent"].mean() + 0.3
    assert (fraud["gap_min"] < 60).mean() > 0.3 > (honest["gap_min"] < 60).mean()
    # ... and no single tell gives it away.
    assert 0.05 < (fraud["from_home"] < 50).mean() and (honest["from_home"] > 200).sum() > 1000


def test_drift_changes_the_pattern_from_the_drift_day(tmp_path: Path) -> None:
    generate(GenerationSpec(users=20_000, days=30, seed=4, scenario="drift", drift_day=15), tmp_path)
    tx = pd.read_parquet(tmp_path / "transactions.parquet")
    users = pd.read_parquet(tmp_path / "users.parquet")
    tx = tx[tx["fraud"]].merge(users, on="user_id")
    tx["from_home"] = haversine_km(tx["latitude"], tx["longitude"], tx["home_latitude"], tx["home_longitude"])
    drift_start = pd.Timestamp(date(2026, 1, 16), tz="UTC")
    before, after = tx[tx["event_time"] < drift_start], tx[tx["event_time"] >= drift_start]
    assert (before["from_home"] > 200).mean() > 0.5 > 0.3 > (after["from_home"] > 200).mean()
    assert after["amount"].median() < before["amount"].median() / 3
    assert len(after) > len(before)  # bigger bursts


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"scenario": "drift"}, "needs --drift-day"), ({"scenario": "drift", "drift_day": 30}, "needs --drift-day"),
     ({"drift_day": 3}, "only applies"), ({"users": 0}, "at least 1")],
)
def test_bad_specs_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GenerationSpec(**changes)


def test_the_generated_dataset_replays_through_the_producer_source(tmp_path: Path) -> None:
    from producers.dataset import read_transactions

    generate(GenerationSpec(users=50, seed=1), tmp_path)
    replayed = list(read_transactions(tmp_path / "transactions.parquet"))
    assert replayed and all(isinstance(t, Transaction) for t in replayed)
