"""Feature formulas and the stream path's incremental state."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest

from fraud.features import (FEATURE_NAMES, NO_HISTORY, RECENT_MERCHANTS, UserActivity, UserProfile, haversine_km,
                            stream_features)
from tests.conftest import make_transaction

HOME = UserProfile(home_latitude=48.8566, home_longitude=2.3522, median_purchase_amount=20.0)  # Paris


def test_haversine_matches_known_distances() -> None:
    paris_london = haversine_km(np.array([48.8566]), np.array([2.3522]), np.array([51.5074]), np.array([-0.1278]))
    assert paris_london[0] == pytest.approx(343.5, abs=1.0)
    assert haversine_km(np.array([10.0]), np.array([20.0]), np.array([10.0]), np.array([20.0]))[0] == 0.0


def test_first_transaction_has_no_history() -> None:
    first = make_transaction(0, user_id="user_1", latitude=48.8566, longitude=2.3522, amount=50.0)
    features = stream_features([first], {}, {"user_1": HOME})
    assert list(features) == list(FEATURE_NAMES)
    row = {name: values[0] for name, values in features.items()}
    assert row["history_count"] == 0 and row["history_mean_amount"] == 0 and row["history_std_amount"] == 0
    assert row["distance_from_last_transaction"] == row["days_since_last_transaction"] == NO_HISTORY
    assert row["distance_from_home"] == pytest.approx(0.0, abs=1e-6)
    assert row["ratio_to_median_purchase_price"] == pytest.approx(2.5)
    assert row["repeat_retailer"] == 0.0


def test_history_is_strictly_before_each_transaction() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    amounts = [10.0, 30.0, 20.0, 100.0]
    events = [
        make_transaction(n, user_id="user_1", amount=a, event_time=start + timedelta(hours=6 * n),
                         merchant_id="merchant_7" if n != 1 else "merchant_9", latitude=48.0 + n, longitude=2.0)
        for n, a in enumerate(amounts)
    ]
    features = stream_features(events, {}, {"user_1": HOME})
    last = {name: values[-1] for name, values in features.items()}
    previous = np.array(amounts[:-1])
    assert last["history_count"] == 3
    assert last["history_mean_amount"] == pytest.approx(previous.mean())
    assert last["history_max_amount"] == 30.0
    assert last["history_std_amount"] == pytest.approx(previous.std(ddof=1))
    assert last["days_since_last_transaction"] == pytest.approx(0.25)
    assert last["days_since_first_transaction"] == pytest.approx(0.75)
    assert last["distance_from_last_transaction"] == pytest.approx(111.2, abs=0.5)  # one degree of latitude
    assert features["repeat_retailer"].tolist() == [0.0, 0.0, 1.0, 1.0]


def test_welford_state_matches_numpy_over_a_long_history() -> None:
    rng = np.random.default_rng(0)
    amounts = rng.lognormal(3.0, 1.0, 5000)
    state = UserActivity()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n, amount in enumerate(amounts):
        state.observe(make_transaction(n, user_id="user_1", amount=float(amount), event_time=start + timedelta(minutes=n)))
    row = state.history_row(make_transaction(0))
    assert row["history_mean_amount"] == pytest.approx(amounts.mean(), rel=1e-12)
    assert row["history_std_amount"] == pytest.approx(amounts.std(ddof=1), rel=1e-10)
    assert row["history_max_amount"] == amounts.max()
    assert math.isclose(row["first_time_s"], start.timestamp())


def test_users_keep_separate_histories() -> None:
    events = [make_transaction(0, user_id="user_1"), make_transaction(1, user_id="user_2"), make_transaction(2, user_id="user_1")]
    activity: dict[str, UserActivity] = {}
    features = stream_features(events, activity, {"user_1": HOME, "user_2": HOME})
    assert features["history_count"].tolist() == [0.0, 0.0, 1.0]
    assert activity["user_1"].count == 2 and activity["user_2"].count == 1


def _seen_before(state: UserActivity, merchant: str) -> float:
    return state.history_row(make_transaction(0, merchant_id=merchant))["merchant_seen_before"]


def test_a_user_remembers_the_most_recent_distinct_merchants() -> None:
    state = UserActivity()
    for n in range(RECENT_MERCHANTS):
        state.observe(make_transaction(n, user_id="user_1", merchant_id=f"merchant_{n}"))
    state.observe(make_transaction(0, user_id="user_1", merchant_id="merchant_0"))  # again: now the most recent
    state.observe(make_transaction(0, user_id="user_1", merchant_id="merchant_new"))  # one too many: evicts merchant_1
    assert len(state.merchants) == RECENT_MERCHANTS
    assert _seen_before(state, "merchant_0") == _seen_before(state, "merchant_2") == _seen_before(state, "merchant_new") == 1.0
    assert _seen_before(state, "merchant_1") == 0.0
    assert state.to_dict()["merchants"][-2:] == ["merchant_0", "merchant_new"]  # least recently seen first


def test_a_changelog_record_does_not_grow_with_a_users_lifetime() -> None:
    state, sizes = UserActivity(), {}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(1, 10_001):
        state.observe(make_transaction(n, user_id="user_1", merchant_id=f"merchant_{n:05d}", amount=float(n % 97),
                                       event_time=start + timedelta(minutes=n)))
        if n in (RECENT_MERCHANTS, 10_000):
            sizes[n] = len(orjson.dumps(state.to_dict()))
    assert sizes[10_000] <= sizes[RECENT_MERCHANTS] + 64 < 2_000  # a few more digits in the numbers, nothing more
    restored = UserActivity.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert restored == state and list(restored.merchants) == list(state.merchants)  # the order survives too


def test_records_already_in_changelogs_still_load() -> None:
    """Before the bound, `merchants` was every merchant ever seen, listed from a set: any length, any order."""
    old = {"count": 150, "mean_amount": 20.0, "m2": 3.0, "max_amount": 90.0, "first_time_s": 1.7e9, "last_time_s": 1.8e9,
           "last_latitude": 48.0, "last_longitude": 11.0, "merchants": [f"merchant_{n}" for n in range(150)]}
    state = UserActivity.from_dict(old)
    assert state.count == 150 and len(state.merchants) == RECENT_MERCHANTS
    assert _seen_before(state, "merchant_149") == 1.0
    short = UserActivity.from_dict(old | {"merchants": ["merchant_3", "merchant_1"]})
    assert list(short.merchants) == ["merchant_3", "merchant_1"]
    assert UserActivity.from_dict({"count": 0}).merchants == {}  # a record without merchants at all
