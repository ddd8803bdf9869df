"""Feature formulas and the stream path's incremental state."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest

from fraud.features import (FEATURE_NAMES, NO_HISTORY, RECENT_MERCHANTS, STATE_NUMBERS, TransactionColumns, UserProfile, fold_activity,
                            haversine_km, stream_features)
from tests.conftest import make_transaction

HOME = UserProfile(home_latitude=48.8566, home_longitude=2.3522, median_purchase_amount=20.0)  # Paris


def test_haversine_matches_known_distances() -> None:
    paris_london = haversine_km(np.array([48.8566]), np.array([2.3522]), np.array([51.5074]), np.array([-0.1278]))
    assert paris_london[0] == pytest.approx(343.5, abs=1.0)
    assert haversine_km(np.array([10.0]), np.array([20.0]), np.array([10.0]), np.array([20.0]))[0] == 0.0


def test_first_transaction_has_no_history() -> None:
    first = make_transaction(0, user_id="user_1", latitude=48.8566, longitude=2.3522, amount=50.0)
    features = stream_features([first], {}, {"user_1": HOME}).features
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
    features = stream_features(events, {}, {"user_1": HOME}).features
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


def _fold(transactions: list, states: dict | None = None):
    return fold_activity(TransactionColumns.of(transactions), states or {})


def _seen_before(state: dict, merchant: str) -> float:
    """Whether a transaction at ``merchant`` would count as a repeat retailer for a user in ``state``."""
    return float(_fold([make_transaction(0, user_id="user_1", merchant_id=merchant)], {"user_1": state})
                 .history["merchant_seen_before"][0])


def test_welford_state_matches_numpy_over_a_long_history() -> None:
    rng = np.random.default_rng(0)
    amounts = rng.lognormal(3.0, 1.0, 5000)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    state = _fold([make_transaction(n, user_id="user_1", amount=float(amount), event_time=start + timedelta(minutes=n))
                   for n, amount in enumerate(amounts)]).states["user_1"]
    history = _fold([make_transaction(0, user_id="user_1")], {"user_1": state}).history
    assert history["history_mean_amount"][0] == pytest.approx(amounts.mean(), rel=1e-12)
    assert history["history_std_amount"][0] == pytest.approx(amounts.std(ddof=1), rel=1e-10)
    assert history["history_max_amount"][0] == amounts.max()
    assert math.isclose(history["first_time_s"][0], start.timestamp())


def test_the_fold_over_interleaved_users_and_batches_matches_each_users_history_by_definition() -> None:
    """Any split into batches, any interleaving of users: each row's history is that of the user's earlier rows."""
    rng = np.random.default_rng(3)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events = [make_transaction(n, user_id=f"user_{rng.integers(5)}", amount=float(rng.lognormal(3.0, 1.0)),
                               merchant_id=f"merchant_{rng.integers(12)}", latitude=float(rng.uniform(-60, 60)),
                               event_time=start + timedelta(minutes=n)) for n in range(400)]
    states: dict[str, dict] = {}
    history: dict[str, list] = {}
    cuts = [0, *sorted(rng.choice(np.arange(1, 400), 9, replace=False).tolist()), 400]
    for begin, end in zip(cuts, cuts[1:], strict=False):
        folded = _fold(events[begin:end], states)
        states.update(folded.states)
        for name, values in folded.history.items():
            history.setdefault(name, []).extend(values.tolist())
    for row, event in enumerate(events):
        earlier = [e for e in events[:row] if e.user_id == event.user_id]
        amounts = np.array([e.amount for e in earlier])
        assert history["history_count"][row] == len(earlier)
        assert history["merchant_seen_before"][row] == float(any(e.merchant_id == event.merchant_id for e in earlier))
        if earlier:
            assert history["history_mean_amount"][row] == pytest.approx(amounts.mean(), rel=1e-12)
            assert history["history_max_amount"][row] == amounts.max()
            assert history["first_time_s"][row] == earlier[0].event_time.timestamp()
            assert history["last_latitude"][row] == earlier[-1].latitude
        if len(earlier) > 1:
            assert history["history_std_amount"][row] == pytest.approx(amounts.std(ddof=1), rel=1e-9)
    assert sum(state["count"] for state in states.values()) == 400


def test_users_keep_separate_histories() -> None:
    events = [make_transaction(0, user_id="user_1"), make_transaction(1, user_id="user_2"), make_transaction(2, user_id="user_1")]
    computed = stream_features(events, {}, {"user_1": HOME, "user_2": HOME})
    assert computed.features["history_count"].tolist() == [0.0, 0.0, 1.0]
    assert computed.states["user_1"]["count"] == 2 and computed.states["user_2"]["count"] == 1


def test_a_user_remembers_the_most_recent_distinct_merchants() -> None:
    events = [make_transaction(n, user_id="user_1", merchant_id=f"merchant_{n}") for n in range(RECENT_MERCHANTS)]
    events.append(make_transaction(0, user_id="user_1", merchant_id="merchant_0"))  # again: now the most recent
    events.append(make_transaction(0, user_id="user_1", merchant_id="merchant_new"))  # one too many: evicts merchant_1
    state = _fold(events).states["user_1"]
    assert len(state["merchants"]) == RECENT_MERCHANTS
    assert _seen_before(state, "merchant_0") == _seen_before(state, "merchant_2") == _seen_before(state, "merchant_new") == 1.0
    assert _seen_before(state, "merchant_1") == 0.0
    assert state["merchants"][-2:] == ("merchant_0", "merchant_new")  # least recently seen first
    # a tuple: the cyclic collector stops tracking a tuple of strings after its first pass (a list it walks every time)
    assert type(state["merchants"]) is tuple


def test_a_state_continues_the_same_after_the_tables_json() -> None:
    first = _fold([make_transaction(0, user_id="user_1"), make_transaction(1, user_id="user_1", amount=30.0,
                                                                          merchant_id="m2")]).states
    restored = orjson.loads(orjson.dumps(first))  # its merchants come back as a list, not the tuple written
    assert orjson.dumps(restored) == orjson.dumps(first)
    later = [make_transaction(2, user_id="user_1", merchant_id="m2", amount=7.0)]
    assert _fold(later, restored).history.keys() == _fold(later, first).history.keys()
    for name, values in _fold(later, restored).history.items():
        assert values.tolist() == _fold(later, first).history[name].tolist(), name


def test_a_changelog_record_does_not_grow_with_a_users_lifetime() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    state, sizes = None, {}
    for n in range(1, 10_001, 500):  # batches of 500 of one user's transactions
        batch = [make_transaction(k, user_id="user_1", merchant_id=f"merchant_{k:05d}", amount=float(k % 97),
                                  event_time=start + timedelta(minutes=k)) for k in range(n, n + 500)]
        state = _fold(batch, {"user_1": state}).states["user_1"]
        sizes[n + 499] = len(orjson.dumps(state))
    assert sizes[10_000] <= sizes[500] + 64 < 2_000  # a few more digits in the numbers, nothing more


def test_records_already_in_changelogs_still_load() -> None:
    """Before the bound, `merchants` was every merchant ever seen, listed from a set: any length, any order."""
    old = {"count": 150, "mean_amount": 20.0, "m2": 3.0, "max_amount": 90.0, "first_time_s": 1.7e9, "last_time_s": 1.8e9,
           "last_latitude": 48.0, "last_longitude": 11.0, "merchants": [f"merchant_{n}" for n in range(150)]}
    assert _seen_before(old, "merchant_149") == 1.0 and _seen_before(old, "merchant_0") == 0.0
    after = _fold([make_transaction(0, user_id="user_1", merchant_id="merchant_3")], {"user_1": old}).states["user_1"]
    assert after["count"] == 151 and len(after["merchants"]) == RECENT_MERCHANTS
    short = old | {"merchants": ["merchant_3", "merchant_1"]}
    assert _seen_before(short, "merchant_1") == 1.0 and _seen_before(short, "merchant_2") == 0.0
    assert _seen_before({"count": 0}, "merchant_1") == 0.0  # a record without merchants at all


def test_a_state_holds_every_state_key_in_order() -> None:
    """`fold_activity` writes its states as a dict display: the keys must stay STATE_NUMBERS, then merchants."""
    state = _fold([make_transaction(0, user_id="user_1")]).states["user_1"]
    assert list(state) == [*STATE_NUMBERS, "merchants"]
