"""Where `fraud produce` gets its transactions: small picklable descriptions that open an iterator.

They are descriptions rather than iterators so that the encoder process
(`producers.encoding`) can open the source itself instead of receiving every
event through a pipe.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fraud.events import Transaction
from producers.dataset import RejectedRow, read_transactions
from producers.synthetic import synthetic_transactions


class TransactionSource(Protocol):
    """Anything that can open a stream of transactions (and rejected rows)."""

    def open(self) -> Iterator[Transaction | RejectedRow]: ...


@dataclass(frozen=True)
class SyntheticSource:
    """The built-in synthetic stream: ``count`` events over ``users`` users, event times from now."""

    count: int
    users: int = 1000
    seed: int | None = None

    def open(self) -> Iterator[Transaction | RejectedRow]:
        return synthetic_transactions(self.count, users=self.users, seed=self.seed)


@dataclass(frozen=True)
class DatasetSource:
    """Rows of a Parquet/CSV/JSON Lines file, at most ``limit`` of them."""

    path: Path
    limit: int | None = None

    def open(self) -> Iterator[Transaction | RejectedRow]:
        return read_transactions(self.path, self.limit)
