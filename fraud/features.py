"""The model's features, defined once.

A feature is computed from three things: the transaction itself, the user's
*profile* (home location and median purchase amount, refreshed in batch by the
pipeline), and the user's *history* strictly before this transaction (count,
mean, max and standard deviation of amounts, first and last transaction, whether
the merchant was seen before).

The history has two implementations, and a parity test proves they agree:
- batch: Spark gathers and sorts each user's transactions; `sorted_history` (`training_pipeline/prep.py`)
  sums each user's earlier rows in numpy;
- stream: `fold_activity`, a small per-user state (JSON, in the worker's table) folded
  over each micro-batch column-wise, in the order of the events.

Everything after that is one vectorised function, `compute_features`, which both
paths call on columns: Spark through `mapInArrow`, the stream worker on a
micro-batch. So the formulas below exist exactly once.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from fraud.events import Transaction

# Model inputs, in the order of the ONNX input tensor's columns.
FEATURE_NAMES: tuple[str, ...] = (
    "amount",
    "distance_from_home",
    "distance_from_last_transaction",
    "ratio_to_median_purchase_price",
    "repeat_retailer",
    "used_chip",
    "used_pin_number",
    "online_order",
    "history_count",
    "history_mean_amount",
    "history_max_amount",
    "history_std_amount",
    "days_since_last_transaction",
    "days_since_first_transaction",
)

# Columns `compute_features` reads; the batch and stream paths both produce exactly these.
INPUT_COLUMNS: tuple[str, ...] = (
    "event_time_s", "amount", "latitude", "longitude", "used_chip", "used_pin_number", "online_order",
    "home_latitude", "home_longitude", "median_purchase_amount",
    "history_count", "history_mean_amount", "history_max_amount", "history_std_amount",
    "first_time_s", "last_time_s", "last_latitude", "last_longitude", "merchant_seen_before",
)

# Distinct merchants a user's stream state remembers, the most recently seen (see `fold_activity`).
RECENT_MERCHANTS = 64
NO_HISTORY = -1.0  # value of the "since/from last" features for a user's first transaction
EARTH_RADIUS_KM = 6371.0088
SECONDS_PER_DAY = 86_400.0


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance in km between two arrays of (latitude, longitude) in degrees."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(a, dtype=np.float64)) for a in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def compute_features(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's features (FEATURE_NAMES) from the INPUT_COLUMNS of any number of transactions.

    ``columns`` can be a dict of arrays or a pandas DataFrame. History columns
    describe the user's transactions strictly before this one; a user without
    history has history_count 0 and NaN first/last times and location.
    """
    col = {name: np.asarray(columns[name], dtype=np.float64) for name in INPUT_COLUMNS}
    has_history = col["history_count"] > 0
    since_last = (col["event_time_s"] - col["last_time_s"]) / SECONDS_PER_DAY
    since_first = (col["event_time_s"] - col["first_time_s"]) / SECONDS_PER_DAY
    from_last = haversine_km(col["latitude"], col["longitude"], col["last_latitude"], col["last_longitude"])
    return {
        "amount": col["amount"],
        "distance_from_home": haversine_km(col["latitude"], col["longitude"], col["home_latitude"], col["home_longitude"]),
        "distance_from_last_transaction": np.where(has_history, from_last, NO_HISTORY),
        "ratio_to_median_purchase_price": col["amount"] / np.maximum(col["median_purchase_amount"], 0.01),
        "repeat_retailer": (col["merchant_seen_before"] > 0).astype(np.float64),
        "used_chip": col["used_chip"],
        "used_pin_number": col["used_pin_number"],
        "online_order": col["online_order"],
        "history_count": col["history_count"],
        "history_mean_amount": np.where(has_history, col["history_mean_amount"], 0.0),
        "history_max_amount": np.where(has_history, col["history_max_amount"], 0.0),
        "history_std_amount": np.where(col["history_count"] > 1, col["history_std_amount"], 0.0),
        "days_since_last_transaction": np.where(has_history, since_last, NO_HISTORY),
        "days_since_first_transaction": np.where(has_history, since_first, NO_HISTORY),
    }


@dataclass(frozen=True)
class UserProfile:
    """Batch statistics of one user, refreshed by the pipeline; both paths read the same values."""

    home_latitude: float
    home_longitude: float
    median_purchase_amount: float


# A user's stream state, as the worker's changelog-backed table holds it (JSON): the numbers below, and
# ``merchants``, the last RECENT_MERCHANTS distinct merchants, least recently seen first. The times and
# places are None until the user's first transaction. Other keys (the scorer's input position) are kept apart.
STATE_NUMBERS: tuple[str, ...] = ("count", "mean_amount", "m2", "max_amount", "first_time_s", "last_time_s",
                                  "last_latitude", "last_longitude")
_NO_STATE = {"count": 0, "mean_amount": 0.0, "m2": 0.0, "max_amount": 0.0,  # no times or places yet: NaN
             "first_time_s": None, "last_time_s": None, "last_latitude": None, "last_longitude": None}
_pick_numbers = operator.itemgetter(*STATE_NUMBERS)
_LAST_SEEN = ("first_time_s", "last_time_s", "last_latitude", "last_longitude")  # in a state, and as history
_HISTORY_NUMBERS = ("history_count", "history_mean_amount", "history_max_amount", "history_std_amount", *_LAST_SEEN)
_TRANSACTION_NUMBERS = ("event_time_s", "amount", "latitude", "longitude", "used_chip", "used_pin_number", "online_order")


@dataclass(frozen=True)
class TransactionColumns:
    """A micro-batch's transactions as columns, with each row's user as an index into ``users``."""

    users: list[str]  # distinct, in first-seen order
    user_of: np.ndarray  # [N] index into users
    merchants: list[str]
    columns: dict[str, np.ndarray]  # event_time_s, amount, latitude, longitude, used_chip, used_pin_number, online_order

    @classmethod
    def of(cls, transactions: Sequence[Transaction]) -> TransactionColumns:
        """Column by column, each read with map() over an attribute getter: no Python step per transaction."""
        count = len(transactions)
        user_ids = list(map(operator.attrgetter("user_id"), transactions))
        index = {user: position for position, user in enumerate(dict.fromkeys(user_ids))}
        times = map(datetime.timestamp, map(operator.attrgetter("event_time"), transactions))
        columns = {"event_time_s": np.fromiter(times, np.float64, count)}
        for name in _TRANSACTION_NUMBERS[1:]:
            columns[name] = np.fromiter(map(operator.attrgetter(name), transactions), np.float64, count)
        return cls(list(index), np.fromiter(map(index.__getitem__, user_ids), np.intp, count),
                   list(map(operator.attrgetter("merchant_id"), transactions)), columns)


@dataclass(frozen=True)
class Activity:
    """What `fold_activity` gives: each row's history before it, and each user's state after the batch."""

    history: dict[str, np.ndarray]  # the history INPUT_COLUMNS, one value per row
    states: dict[str, dict]  # user -> state (see STATE_NUMBERS), JSON-ready


def fold_activity(batch: TransactionColumns, states: Mapping[str, Mapping | None]) -> Activity:
    """Each row's history (strictly before it), and the users' states after the whole batch.

    Mean and variance use Welford's update, which stays exact (1e-12 relative) over
    thousands of events without storing them. It is applied column-wise: first to every
    user's first row in the batch, then to every user's second, and so on, so the
    arithmetic is that of one event at a time, in order, per user.

    A user remembers the last RECENT_MERCHANTS distinct merchants. The batch path remembers
    every merchant: the two agree while a user has at most RECENT_MERCHANTS distinct
    merchants (the generated data has at most 34 transactions per user); past that, a
    merchant last seen before RECENT_MERCHANTS others counts as new.
    """
    start = [states.get(user) or _NO_STATE for user in batch.users]
    numbers = np.array([_numbers(entry) for entry in start], dtype=np.float64).reshape(len(start), len(STATE_NUMBERS))
    state = {name: numbers[:, column].copy() for column, name in enumerate(STATE_NUMBERS)}
    history = {name: np.empty(len(batch.user_of)) for name in _HISTORY_NUMBERS}
    for rows in _by_rank_within_user(batch.user_of):
        _observe(state, history, batch, rows)
    recent = [_recent_merchants(entry) for entry in start]
    seen_before = np.fromiter((_seen_again(recent[user], merchant) for user, merchant in
                               zip(batch.user_of.tolist(), batch.merchants, strict=True)), np.float64, len(batch.merchants))
    rest = np.column_stack([state[name] for name in STATE_NUMBERS[1:]]).tolist()
    counts = state["count"].astype(np.int64).tolist()
    # A dict display, not dict(zip(keys, values)): a third of the time per user. Its keys are STATE_NUMBERS,
    # then merchants (tests/unit/test_features.py holds them to it).
    after = {user: {"count": count, "mean_amount": mean, "m2": m2, "max_amount": top, "first_time_s": first,
                    "last_time_s": last, "last_latitude": latitude, "last_longitude": longitude,
                    "merchants": tuple(merchants)}
             for user, count, (mean, m2, top, first, last, latitude, longitude), merchants
             in zip(batch.users, counts, rest, recent, strict=True)}
    return Activity(history | {"merchant_seen_before": seen_before}, after)


def _numbers(state: Mapping) -> tuple:
    """The STATE_NUMBERS of a state (None for a missing one: NaN)."""
    try:
        return _pick_numbers(state)
    except KeyError:  # a record with fewer keys than ours write
        return tuple(state.get(name) for name in STATE_NUMBERS)


def rank_within_groups(keys: np.ndarray) -> np.ndarray:
    """Each row's rank among the rows with its key, in row order: 0 for a key's first row, 1 for its second, ..."""
    order = np.argsort(keys, kind="stable")
    keys_sorted = keys[order]
    group_start = np.flatnonzero(np.r_[True, keys_sorted[1:] != keys_sorted[:-1]])
    sizes = np.diff(np.r_[group_start, len(order)])
    rank = np.empty(len(order), np.intp)
    rank[order] = np.arange(len(order)) - np.repeat(group_start, sizes)
    return rank


def _by_rank_within_user(user_of: np.ndarray) -> list[np.ndarray]:
    """The row indices of each user's first row in the batch, then of each one's second, and so on."""
    rank = rank_within_groups(user_of)
    by_rank = np.argsort(rank, kind="stable")
    counts = np.bincount(rank) if len(rank) else np.zeros(0, np.intp)
    return np.split(by_rank, np.cumsum(counts)[:-1])


def _observe(state: dict[str, np.ndarray], history: dict[str, np.ndarray], batch: TransactionColumns,
             rows: np.ndarray) -> None:
    """Record the history of ``rows`` (one per user), then fold them into their users' state."""
    users, amount = batch.user_of[rows], batch.columns["amount"][rows]
    count, mean, m2 = state["count"][users], state["mean_amount"][users], state["m2"][users]
    history["history_count"][rows] = count
    history["history_mean_amount"][rows] = mean
    history["history_max_amount"][rows] = state["max_amount"][users]
    with np.errstate(invalid="ignore", divide="ignore"):
        history["history_std_amount"][rows] = np.where(count > 1, np.sqrt(m2 / (count - 1)), 0.0)
    for name in _LAST_SEEN:
        history[name][rows] = state[name][users]
    count = count + 1
    delta = amount - mean
    mean = mean + delta / count
    state["m2"][users] = m2 + delta * (amount - mean)
    state["mean_amount"][users], state["count"][users] = mean, count
    first = count == 1
    state["max_amount"][users] = np.where(first, amount, np.maximum(state["max_amount"][users], amount))
    time_s = batch.columns["event_time_s"][rows]
    state["first_time_s"][users] = np.where(first, time_s, state["first_time_s"][users])
    state["last_time_s"][users] = time_s
    state["last_latitude"][users] = batch.columns["latitude"][rows]
    state["last_longitude"][users] = batch.columns["longitude"][rows]


def _recent_merchants(state: Mapping) -> dict[str, None]:
    """A state's merchants as an ordered set, least recently seen first.

    Older records listed every merchant ever seen, from a set: any length, in no
    particular order, so which are kept past RECENT_MERCHANTS is arbitrary (once).
    """
    return dict.fromkeys((state.get("merchants") or ())[-RECENT_MERCHANTS:])


def _seen_again(merchants: dict[str, None], merchant: str) -> bool:
    """Whether ``merchant`` is among ``merchants``; it becomes the most recent, the least recent beyond the bound goes."""
    seen = merchant in merchants
    if seen:
        del merchants[merchant]
    merchants[merchant] = None
    if len(merchants) > RECENT_MERCHANTS:
        del merchants[next(iter(merchants))]
    return seen


@dataclass(frozen=True)
class StreamFeatures:
    """A micro-batch's features (FEATURE_NAMES, one value per transaction) and its users' states after it."""

    features: dict[str, np.ndarray]
    states: dict[str, dict]


def stream_features(transactions: Sequence[Transaction], states: Mapping[str, Mapping | None],
                    profiles: Mapping[str, UserProfile]) -> StreamFeatures:
    """Features of a micro-batch, in order, from the users' ``states`` before it (missing: no history yet)."""
    batch = TransactionColumns.of(transactions)
    activity = fold_activity(batch, states)
    known = [profiles[user] for user in batch.users]
    profile = {name: np.array([getattr(p, name) for p in known], dtype=np.float64)[batch.user_of]
               for name in ("home_latitude", "home_longitude", "median_purchase_amount")}
    return StreamFeatures(compute_features(batch.columns | profile | activity.history), activity.states)
