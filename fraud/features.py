"""The model's features, defined once.

A feature is computed from three things: the transaction itself, the user's
*profile* (home location and median purchase amount, refreshed in batch by the
pipeline), and the user's *history* strictly before this transaction (count,
mean, max and standard deviation of amounts, first and last transaction, whether
the merchant was seen before).

The history has two implementations, and a parity test proves they agree:
- batch: Spark window functions over all transactions (`training_pipeline/prep.py`);
- stream: `UserActivity`, a small per-user state updated one event at a time.

Everything after that is one vectorised function, `compute_features`, which both
paths call on columns: Spark through `mapInPandas`, the stream worker on a
micro-batch. So the formulas below exist exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

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

# Distinct merchants a user's stream state remembers, the most recently seen (see `UserActivity`).
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


@dataclass
class UserActivity:
    """A user's history for the stream path: everything the features need, updated per event.

    Mean and variance use Welford's update, which stays exact enough (1e-12
    relative) over thousands of events without storing them.

    ``merchants`` holds the last RECENT_MERCHANTS distinct merchants, least
    recently seen first, so a changelog record does not grow with a user's
    lifetime. The batch path remembers every merchant: the two agree while a
    user has at most RECENT_MERCHANTS distinct merchants (the generated data
    has at most 34 transactions per user); past that, a merchant last seen
    before RECENT_MERCHANTS others counts as new.
    """

    count: int = 0
    mean_amount: float = 0.0
    m2: float = 0.0
    max_amount: float = 0.0
    first_time_s: float = math.nan
    last_time_s: float = math.nan
    last_latitude: float = math.nan
    last_longitude: float = math.nan
    merchants: dict[str, None] = field(default_factory=dict)  # an ordered set: least recently seen first

    def history_row(self, transaction: Transaction) -> dict[str, float]:
        """This user's history before ``transaction``, as the history INPUT_COLUMNS."""
        return {
            "history_count": float(self.count),
            "history_mean_amount": self.mean_amount,
            "history_max_amount": self.max_amount,
            "history_std_amount": math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0,
            "first_time_s": self.first_time_s,
            "last_time_s": self.last_time_s,
            "last_latitude": self.last_latitude,
            "last_longitude": self.last_longitude,
            "merchant_seen_before": 1.0 if transaction.merchant_id in self.merchants else 0.0,
        }

    def observe(self, transaction: Transaction) -> None:
        """Fold ``transaction`` into the history (call after taking its history_row)."""
        amount = transaction.amount
        self.count += 1
        delta = amount - self.mean_amount
        self.mean_amount += delta / self.count
        self.m2 += delta * (amount - self.mean_amount)
        self.max_amount = amount if self.count == 1 else max(self.max_amount, amount)
        time_s = transaction.event_time.timestamp()
        if self.count == 1:
            self.first_time_s = time_s
        self.last_time_s = time_s
        self.last_latitude, self.last_longitude = transaction.latitude, transaction.longitude
        merchants, merchant = self.merchants, transaction.merchant_id
        merchants.pop(merchant, None)  # seen again: it becomes the most recent
        merchants[merchant] = None
        if len(merchants) > RECENT_MERCHANTS:
            del merchants[next(iter(merchants))]

    def to_dict(self) -> dict:
        """A JSON-ready copy (NaN becomes None), for the stream worker's changelog-backed table."""
        seen = self.count > 0  # the times and places are NaN exactly until the first transaction
        return {
            "count": self.count, "mean_amount": self.mean_amount, "m2": self.m2, "max_amount": self.max_amount,
            "first_time_s": self.first_time_s if seen else None, "last_time_s": self.last_time_s if seen else None,
            "last_latitude": self.last_latitude if seen else None, "last_longitude": self.last_longitude if seen else None,
            "merchants": list(self.merchants),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> UserActivity:
        """The inverse of `to_dict`; also reads older records, whose unbounded merchant list came from a set.

        Such a list is in no particular order, so which of its merchants are
        kept, when there are more than RECENT_MERCHANTS, is arbitrary (once).
        """
        values = {name: math.nan if data.get(name) is None else data[name] for name in _ACTIVITY_NUMBERS}
        merchants = list(data.get("merchants", ()))
        return cls(**values, merchants=dict.fromkeys(merchants[-RECENT_MERCHANTS:]))


_ACTIVITY_NUMBERS = ("count", "mean_amount", "m2", "max_amount", "first_time_s", "last_time_s", "last_latitude",
                     "last_longitude")


def transaction_row(transaction: Transaction, profile: UserProfile) -> dict[str, float]:
    """The transaction's own and profile INPUT_COLUMNS."""
    return {
        "event_time_s": transaction.event_time.timestamp(),
        "amount": transaction.amount,
        "latitude": transaction.latitude,
        "longitude": transaction.longitude,
        "used_chip": float(transaction.used_chip),
        "used_pin_number": float(transaction.used_pin_number),
        "online_order": float(transaction.online_order),
        "home_latitude": profile.home_latitude,
        "home_longitude": profile.home_longitude,
        "median_purchase_amount": profile.median_purchase_amount,
    }


def stream_features(
    transactions: list[Transaction], activity: dict[str, UserActivity], profiles: Mapping[str, UserProfile]
) -> dict[str, np.ndarray]:
    """Features of a micro-batch, in order, updating each user's ``activity`` as it goes."""
    rows = []
    for transaction in transactions:
        state = activity.setdefault(transaction.user_id, UserActivity())
        rows.append(transaction_row(transaction, profiles[transaction.user_id]) | state.history_row(transaction))
        state.observe(transaction)
    return compute_features({name: np.array([row[name] for row in rows], dtype=np.float64) for name in INPUT_COLUMNS})
