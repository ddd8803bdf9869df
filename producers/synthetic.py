"""A built-in live stream of synthetic card transactions, with event times from now.

`fraud data generate` writes labelled datasets for training and replay; this
stream is for a live feed of any length without a file.

Values are drawn in numpy chunks (no per-field Python random calls); each row is
then validated into a `Transaction`. Every user has a home location and a typical
spend, so a transaction far from home or far above the user's usual amount stands
out, which is what the fraud features look at.

Ground truth (for `fraud produce --labels`): half of the transactions far from
home are a stolen card's, the other half travel. Its coin flips come from a
generator spawned off the stream's, so a seed gives the same transactions
whether or not anyone asks for the truth.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from pydantic import TypeAdapter

from fraud.datagen import MERCHANT_CATEGORIES
from fraud.events import Transaction

_CHUNK = 4096
_TRANSACTIONS = TypeAdapter(list[Transaction])
_STOLEN_SHARE_OF_FAR = 0.5


@dataclass(frozen=True)
class SyntheticUsers:
    """Per-user home location and typical spend, indexed by the number in ``user_<n>``."""

    home_latitude: np.ndarray
    home_longitude: np.ndarray
    typical_amount: np.ndarray

    @classmethod
    def draw(cls, users: int, rng: np.random.Generator) -> SyntheticUsers:
        """Homes spread over a mid-latitude land box; typical spend log-normal around 40."""
        return cls(
            home_latitude=rng.uniform(35.0, 55.0, users),
            home_longitude=rng.uniform(-10.0, 30.0, users),
            typical_amount=rng.lognormal(np.log(40.0), 0.6, users),
        )


def synthetic_transactions(
    count: int | None,
    users: int = 1000,
    seed: int | None = None,
    start: datetime | None = None,
    mean_gap_ms: float = 1.0,
) -> Iterator[Transaction]:
    """Yield ``count`` transactions (forever if None) for ``users`` users.

    Event times start at ``start`` (default: now) and advance by exponential
    gaps of ``mean_gap_ms``, so a replay keeps a realistic order.
    """
    for transactions, _ in _chunks(count, users, seed, start, mean_gap_ms):
        yield from transactions


def synthetic_outcomes(
    count: int | None, users: int = 1000, seed: int | None = None, start: datetime | None = None, mean_gap_ms: float = 1.0,
) -> Iterator[tuple[Transaction, bool]]:
    """The same stream as `synthetic_transactions`, each transaction with its ground truth (True: fraud)."""
    for transactions, fraud in _chunks(count, users, seed, start, mean_gap_ms):
        yield from zip(transactions, fraud.tolist(), strict=True)


def _chunks(
    count: int | None, users: int, seed: int | None, start: datetime | None, mean_gap_ms: float,
) -> Iterator[tuple[list[Transaction], np.ndarray]]:
    rng = np.random.default_rng(seed)
    truth_rng = rng.spawn(1)[0]  # leaves rng's own sequence as it was
    population = SyntheticUsers.draw(users, rng)
    run_id = f"{seed:08x}" if seed is not None else secrets.token_hex(4)
    clock = start or datetime.now(UTC)
    produced = 0
    while count is None or produced < count:
        size = _CHUNK if count is None else min(_CHUNK, count - produced)
        rows, far, clock = _draw_chunk(rng, population, size, clock, mean_gap_ms)
        for offset, row in enumerate(rows):
            row["transaction_id"] = f"tx-{run_id}-{produced + offset:010d}"
        # one validator call per chunk: cheaper than per row
        yield _TRANSACTIONS.validate_python(rows), far & (truth_rng.random(size) < _STOLEN_SHARE_OF_FAR)
        produced += size


def _draw_chunk(
    rng: np.random.Generator, population: SyntheticUsers, size: int, clock: datetime, mean_gap_ms: float
) -> tuple[list[dict], np.ndarray, datetime]:
    user = rng.integers(0, len(population.typical_amount), size)
    online = rng.random(size) < 0.35
    # Most purchases happen near home; a few are far away (travel, or a stolen card).
    far = rng.random(size) < 0.03
    spread = np.where(far, 8.0, 0.08)
    latitude = np.clip(population.home_latitude[user] + rng.normal(0.0, spread), -90.0, 90.0)
    longitude = np.clip(population.home_longitude[user] + rng.normal(0.0, spread), -180.0, 180.0)
    amount = np.round(population.typical_amount[user] * rng.lognormal(0.0, 0.7, size), 2)
    used_chip = ~online & (rng.random(size) < 0.85)
    used_pin = used_chip & (rng.random(size) < 0.6)
    category = rng.integers(0, len(MERCHANT_CATEGORIES), size)
    merchant = rng.integers(0, 5000, size)
    offsets_ms = np.cumsum(rng.exponential(mean_gap_ms, size))
    times = [clock + timedelta(milliseconds=float(ms)) for ms in offsets_ms]
    rows = [
        {
            "user_id": f"user_{u}",
            "event_time": t,
            "amount": a,
            "merchant_id": f"merchant_{m}",
            "merchant_category": MERCHANT_CATEGORIES[c],
            "latitude": la,
            "longitude": lo,
            "used_chip": chip,
            "used_pin_number": pin,
            "online_order": on,
        }
        for u, t, a, m, c, la, lo, chip, pin, on in zip(
            user.tolist(), times, amount.tolist(), merchant.tolist(), category.tolist(), latitude.tolist(),
            longitude.tolist(), used_chip.tolist(), used_pin.tolist(), online.tolist(), strict=True,
        )
    ]
    return rows, far, times[-1] if times else clock
