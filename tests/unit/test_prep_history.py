"""The prep step's history over users' sorted rows, without Spark: against a plain per-row oracle, and cut into
batches anywhere (a user's rows may straddle the batches Spark hands over)."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from fraud.features import FEATURE_NAMES
from training_pipeline.prep import PROFILE_COLUMNS, ProfileLookup, TimeSplit, _features_of_sorted, sorted_history

START = datetime(2026, 1, 1, tzinfo=UTC)
SPLIT = TimeSplit(START, START + timedelta(hours=10), START + timedelta(hours=20), START + timedelta(hours=30),
                  START + timedelta(hours=40))


def sorted_rows(seed: int = 7, users: int = 40) -> pa.Table:
    """Rows of ``users`` users (1-30 each), sorted by user then time, with near-equal and equal amounts among them."""
    rng = np.random.default_rng(seed)
    ids, times, amounts, merchants = [], [], [], []
    for user in range(users):
        count = int(rng.integers(1, 31))
        ids += [f"user_{user:07d}"] * count
        times += sorted(START + timedelta(seconds=int(s)) for s in rng.integers(0, 40 * 3600, count))
        base = float(rng.uniform(1, 500))
        amounts += [base + float(rng.choice([0.0, 0.01, rng.uniform(0, 300)])) for _ in range(count)]
        merchants += [f"merchant_{int(m)}" for m in rng.integers(0, 6, count)]
    rows = len(ids)
    return pa.table({
        "transaction_id": [f"tx-{i:010d}" for i in range(rows)], "user_id": ids, "merchant_id": merchants,
        "event_timestamp": pa.array(times, pa.timestamp("us", tz="UTC")), "amount": amounts,
        "latitude": rng.uniform(-60, 60, rows), "longitude": rng.uniform(-170, 170, rows),
        "used_chip": rng.random(rows) < 0.5, "used_pin_number": rng.random(rows) < 0.2,
        "online_order": rng.random(rows) < 0.4, "fraud": rng.random(rows) < 0.05,
    })


def profiles_of(table: pa.Table, seed: int = 8) -> pa.Table:
    """A profile row for every user of ``table``, in reverse order of their ids."""
    users = sorted(set(table.column("user_id").to_pylist()), reverse=True)
    rng = np.random.default_rng(seed)
    return pa.table({"user_id": users, "home_latitude": rng.uniform(-60, 60, len(users)),
                     "home_longitude": rng.uniform(-170, 170, len(users)),
                     "median_purchase_amount": rng.uniform(1, 300, len(users))})


def features_of(batches: list[pa.RecordBatch], profiles: pa.Table) -> pa.Table:
    """The step's mapInArrow body over ``batches``, as Spark runs it, with ``profiles`` as the broadcast table."""
    out = list(_features_of_sorted(SPLIT, lambda: profiles, iter(batches)))
    return pa.Table.from_batches(out) if out else pa.table({})


def oracle(table: pa.Table) -> dict[str, list[float]]:
    """Each row's history by the definition: the same user's earlier rows, one at a time."""
    rows = table.to_pylist()
    out: dict[str, list[float]] = {name: [] for name in ("history_count", "history_mean_amount", "history_max_amount",
                                                          "history_std_amount", "merchant_seen_before")}
    for index, row in enumerate(rows):
        earlier = [r for r in rows[:index] if r["user_id"] == row["user_id"]]
        amounts = [r["amount"] for r in earlier]
        out["history_count"].append(float(len(earlier)))
        out["history_mean_amount"].append(statistics.fmean(amounts) if amounts else np.nan)
        out["history_max_amount"].append(max(amounts) if amounts else np.nan)
        out["history_std_amount"].append(statistics.stdev(amounts) if len(amounts) > 1 else np.nan)
        out["merchant_seen_before"].append(float(sum(r["merchant_id"] == row["merchant_id"] for r in earlier)))
    return out


def test_the_history_of_sorted_rows_is_each_users_earlier_rows() -> None:
    table = sorted_rows()
    time_s = table.column("event_timestamp").cast(pa.int64()).to_numpy() / 1e6
    history = sorted_history(table, {"event_time_s": time_s, "amount": table.column("amount").to_numpy(),
                                     "latitude": table.column("latitude").to_numpy(),
                                     "longitude": table.column("longitude").to_numpy()})
    for name, expected in oracle(table).items():
        np.testing.assert_allclose(history[name], expected, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=name)
    first_rows = history["history_count"] == 0
    assert np.isnan(history["last_time_s"][first_rows]).all()
    assert (history["last_time_s"][~first_rows] <= time_s[~first_rows]).all()


@pytest.mark.parametrize("batch_rows", [1, 2, 7, 64, 10_000])
def test_features_do_not_depend_on_where_the_batches_are_cut(batch_rows: int) -> None:
    table = sorted_rows()
    whole = features_of(table.to_batches(), profiles_of(table))
    cut = features_of(table.to_batches(max_chunksize=batch_rows), profiles_of(table))
    assert cut.num_rows == whole.num_rows == table.num_rows
    assert cut.column("transaction_id").to_pylist() == table.column("transaction_id").to_pylist()
    for name in FEATURE_NAMES:
        np.testing.assert_array_equal(cut.column(name).to_numpy(), whole.column(name).to_numpy(), err_msg=name)
    splits = cut.column("split").to_pylist()
    times = table.column("event_timestamp").to_pylist()
    expected = ["profile" if t < SPLIT.profile_end else "train" if t < SPLIT.valid_start
                else "valid" if t < SPLIT.test_start else "test" for t in times]
    assert splits == expected and set(splits) == {"profile", "train", "valid", "test"}


def test_empty_batches_among_them_change_nothing() -> None:
    table = sorted_rows(users=5)
    empty = table.schema.empty_table().to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]
    batches = [empty[0], *table.to_batches(max_chunksize=3), empty[0]]
    out = features_of(batches, profiles_of(table))
    assert out.column("transaction_id").to_pylist() == table.column("transaction_id").to_pylist()
    assert list(_features_of_sorted(SPLIT, lambda: profiles_of(table), iter(empty))) == []


def test_the_profile_lookup_gives_each_user_their_own_row_and_a_stranger_nan() -> None:
    profiles = profiles_of(sorted_rows(users=6))
    users = profiles.column("user_id").to_pylist()
    asked = np.array([users[3], "user_unknown", users[0], users[3]], dtype=object)
    found = ProfileLookup(profiles).of_users(asked)
    for name in PROFILE_COLUMNS:
        values = profiles.column(name).to_pylist()
        np.testing.assert_array_equal(found[name], [values[3], np.nan, values[0], values[3]], err_msg=name)


def test_each_row_is_scored_with_its_own_users_profile() -> None:
    table = sorted_rows(users=8)
    profiles = profiles_of(table)
    out = features_of(table.to_batches(max_chunksize=5), profiles)
    by_user = {row["user_id"]: row for row in profiles.to_pylist()}
    ratio = [amount / by_user[user]["median_purchase_amount"]
             for user, amount in zip(table.column("user_id").to_pylist(), table.column("amount").to_pylist())]
    np.testing.assert_allclose(out.column("ratio_to_median_purchase_price").to_numpy(), ratio, rtol=1e-12)
