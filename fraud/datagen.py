"""Synthetic users and card transactions with a fraud signal the model can learn (`fraud data generate`).

Everything is drawn as whole numpy columns: no Python loop per user or per row.

How fraud looks (each compromised card shows a random subset of these tells,
and some honest transactions show them too, so a good model is not perfect):
- a *burst*: a compromised card is used 1-4 times (drift: 2-8) within minutes;
- far from home and from the previous transaction (p=0.75; drift: 0.15);
- an amount far above the user's usual spend (p=0.7; drift: small "card testing"
  amounts instead);
- online, without chip or PIN (p=0.7; drift: 0.95);
- at a merchant the user never used, often electronics or online services.
Honest noise: 2% of purchases are made while travelling, 1% are big purchases,
and online orders never use chip or PIN either.

About 10% of users have one compromised-card episode in the window, which puts
the base rate of fraud near 1.4% of transactions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

MERCHANT_CATEGORIES = ("grocery", "fuel", "restaurant", "travel", "electronics", "fashion", "pharmacy", "online_services")
_RISKY_CATEGORIES = np.array([4, 7])  # electronics, online_services: what stolen cards buy
MERCHANTS = 50_000
Scenario = Literal["baseline", "drift"]


@dataclass(frozen=True)
class GenerationSpec:
    """What to generate; the same spec and seed always give the same files."""

    users: int = 10_000
    days: int = 30
    seed: int = 0
    start: date = date(2026, 1, 1)
    scenario: Scenario = "baseline"
    drift_day: int | None = None
    min_transactions: int = 1
    max_transactions: int = 34
    compromised_share: float = 0.10

    def __post_init__(self) -> None:
        if self.users < 1 or self.days < 1:
            raise ValueError("users and days must be at least 1")
        if self.scenario == "drift" and (self.drift_day is None or not 0 <= self.drift_day < self.days):
            raise ValueError(f"--scenario drift needs --drift-day between 0 and {self.days - 1}")
        if self.scenario == "baseline" and self.drift_day is not None:
            raise ValueError("--drift-day only applies to --scenario drift")


@dataclass(frozen=True)
class GeneratedFiles:
    """Where the data went, and how much of it there is."""

    users_path: Path
    transactions_path: Path
    users: int
    transactions: int
    frauds: int

    @property
    def fraud_rate(self) -> float:
        return self.frauds / self.transactions if self.transactions else 0.0


def generate(spec: GenerationSpec, out_dir: Path) -> GeneratedFiles:
    """Write ``out_dir/users.parquet`` and ``out_dir/transactions.parquet`` for ``spec``."""
    rng = np.random.default_rng(spec.seed)
    users = _draw_users(spec, rng)
    honest = _draw_honest(spec, users, rng)
    fraud = _draw_fraud(spec, users, rng)
    columns = {name: np.concatenate([honest[name], fraud[name]]) for name in honest}
    del honest, fraud
    order = np.lexsort((columns["user"], columns["time_us"]))  # by time; ties by user, so the order is total
    columns = {name: values[order] for name, values in columns.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    users_path, transactions_path = out_dir / "users.parquet", out_dir / "transactions.parquet"
    pq.write_table(_users_table(users, spec), users_path)
    pq.write_table(_transactions_table(columns), transactions_path, row_group_size=1 << 20)
    frauds = int(columns["fraud"].sum())
    return GeneratedFiles(users_path, transactions_path, spec.users, len(order), frauds)


# --- users ----------------------------------------------------------------------------------------
def _draw_users(spec: GenerationSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = spec.users
    return {
        "home_latitude": rng.uniform(36.0, 58.0, n),
        "home_longitude": rng.uniform(-9.0, 28.0, n),
        "typical_amount": rng.lognormal(np.log(40.0), 0.6, n),
        "online_propensity": rng.beta(2.0, 5.0, n),
        "transactions": rng.integers(spec.min_transactions, spec.max_transactions + 1, n),
    }


def _users_table(users: dict[str, np.ndarray], spec: GenerationSpec) -> pa.Table:
    n = len(users["home_latitude"])
    created = datetime.combine(spec.start, datetime.min.time(), UTC)
    return pa.table({
        "user_id": _prefixed("user_", np.arange(n)),
        "home_latitude": users["home_latitude"],
        "home_longitude": users["home_longitude"],
        "created_at": pa.array(np.full(n, int(created.timestamp() * 1e6)), pa.timestamp("us", tz="UTC")),
    })


# --- honest transactions ------------------------------------------------------------------------------
def _draw_honest(spec: GenerationSpec, users: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    user = np.repeat(np.arange(spec.users, dtype=np.int64), users["transactions"])
    n = len(user)
    start_us = _start_us(spec)
    time_us = start_us + (rng.random(n) * spec.days * 86_400e6).astype(np.int64)
    travelling = rng.random(n) < 0.02
    spread = np.where(travelling, 6.0, 0.05)  # degrees: far away when travelling, else around home
    amount = users["typical_amount"][user] * rng.lognormal(0.0, 0.6, n)
    amount *= np.where(rng.random(n) < 0.01, rng.lognormal(np.log(5.0), 0.5, n), 1.0)  # the odd big purchase
    online = rng.random(n) < users["online_propensity"][user]
    chip = ~online & (rng.random(n) < 0.85)
    # Mostly the user's five usual merchants, otherwise anyone.
    usual = (user * 7919 + rng.integers(0, 5, n) * 104_729) % MERCHANTS
    merchant = np.where(rng.random(n) < 0.6, usual, rng.integers(0, MERCHANTS, n))
    return {
        "user": user,
        "time_us": time_us,
        "amount": amount,
        "latitude": users["home_latitude"][user] + rng.normal(0.0, spread),
        "longitude": users["home_longitude"][user] + rng.normal(0.0, spread),
        "online": online,
        "chip": chip,
        "pin": chip & (rng.random(n) < 0.6),
        "merchant": merchant,
        "fraud": np.zeros(n, dtype=bool),
    }


# --- fraud episodes -------------------------------------------------------------------------------
def _draw_fraud(spec: GenerationSpec, users: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    victims = np.flatnonzero(rng.random(spec.users) < spec.compromised_share)
    start_us = _start_us(spec)
    episode_start = start_us + (rng.random(len(victims)) * spec.days * 86_400e6).astype(np.int64)
    drifted_episode = _after_drift(spec, episode_start)
    burst = np.where(drifted_episode, 2 + rng.poisson(3.0, len(victims)), 1 + rng.poisson(1.0, len(victims)))
    burst = np.minimum(burst, np.where(drifted_episode, 8, 4))

    episode = np.repeat(np.arange(len(victims)), burst)
    user = victims[episode]
    n = len(user)
    drifted = drifted_episode[episode]
    # Minutes apart: the i-th use of the card comes a few exponential gaps after the first.
    gap_minutes = np.where(drifted, 2.0, 20.0)
    first_of_episode = np.r_[0, np.cumsum(burst)[:-1]]
    gaps = rng.exponential(1.0, n) * gap_minutes * 60e6
    gaps[first_of_episode] = 0
    offsets = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first_of_episode], burst)
    time_us = episode_start[episode] + offsets.astype(np.int64)

    far = rng.random(n) < np.where(drifted, 0.15, 0.75)
    spread = np.where(far, 10.0, 0.05)
    typical = users["typical_amount"][user]
    high = rng.random(n) < np.where(drifted, 0.0, 0.7)
    tiny = drifted & (rng.random(n) < 0.6)  # card testing after the drift
    amount = typical * rng.lognormal(0.0, 0.6, n)
    amount = np.where(high, typical * rng.lognormal(np.log(4.0), 0.6, n), amount)
    amount = np.where(tiny, rng.uniform(0.5, 5.0, n), amount)
    card_absent = rng.random(n) < np.where(drifted, 0.95, 0.7)
    chip = ~card_absent & (rng.random(n) < 0.3)  # in store: mostly a cloned magstripe
    risky = rng.random(n) < 0.6
    merchant = rng.integers(0, MERCHANTS // 8, n) * 8 + np.where(risky, rng.choice(_RISKY_CATEGORIES, n), rng.integers(0, 8, n))
    return {
        "user": user,
        "time_us": np.minimum(time_us, _start_us(spec) + int(spec.days * 86_400e6) - 1),
        "amount": amount,
        "latitude": users["home_latitude"][user] + rng.normal(0.0, spread),
        "longitude": users["home_longitude"][user] + rng.normal(0.0, spread),
        "online": card_absent,
        "chip": chip,
        "pin": chip & (rng.random(n) < 0.1),
        "merchant": merchant,
        "fraud": np.ones(n, dtype=bool),
    }


# --- helpers ----------------------------------------------------------------------------------------
def _start_us(spec: GenerationSpec) -> int:
    return int(datetime.combine(spec.start, datetime.min.time(), UTC).timestamp() * 1_000_000)


def _after_drift(spec: GenerationSpec, time_us: np.ndarray) -> np.ndarray:
    if spec.scenario != "drift" or spec.drift_day is None:
        return np.zeros(len(time_us), dtype=bool)
    return time_us >= _start_us(spec) + spec.drift_day * 86_400_000_000


def _prefixed(prefix: str, numbers: np.ndarray) -> pa.Array:
    """``prefix<n>`` strings built in Arrow's C++ kernels, not Python."""
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def _transactions_table(columns: dict[str, np.ndarray]) -> pa.Table:
    n = len(columns["user"])
    merchant = columns["merchant"]
    return pa.table({
        "transaction_id": pc.binary_join_element_wise("tx-", pc.utf8_lpad(pc.cast(pa.array(np.arange(n)), pa.string()), 10, "0"), ""),
        "user_id": _prefixed("user_", columns["user"]),
        "event_time": pa.array(columns["time_us"], pa.timestamp("us", tz="UTC")),
        "amount": np.round(columns["amount"], 2),
        "merchant_id": _prefixed("merchant_", merchant),
        "merchant_category": pa.DictionaryArray.from_arrays(pa.array((merchant % 8).astype(np.int8)), list(MERCHANT_CATEGORIES)),
        "latitude": np.clip(columns["latitude"], -90.0, 90.0),
        "longitude": np.clip(columns["longitude"], -180.0, 180.0),
        "used_chip": columns["chip"],
        "used_pin_number": columns["pin"],
        "online_order": columns["online"],
        "fraud": columns["fraud"],
    })
