"""Outcomes for the `fraud-labels` topic: from a file of real outcomes, or from a generated dataset's ground truth.

A file with an ``is_fraud`` column holds outcomes as they were reported
(``source`` and ``reported_at`` optional: a fraud defaults to a chargeback, a
legitimate one to cleared, and the time to now).

A generated dataset (`fraud data generate`, the demo's replay files) has the
ground truth in its ``fraud`` column instead. Outcomes are then made the way a
bank learns them: every fraud is reported (70% by chargeback, 30% confirmed by
the card holder) after a log-normal delay (median ``FRAUD_LABEL_DELAY_MEDIAN_S``,
two days by default, so most arrive hours to days later); a share of the
legitimate transactions (``FRAUD_LABEL_CLEARED_SHARE``) are cleared by a
review after the same kind of delay; the rest never get a label. ``reported_at``
is the transaction's time plus the delay, and labels are published in that
order, so a consumer sees them arrive as they would have.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from fraud.errors import FraudError
from fraud.events import Label, describe_validation_error
from fraud.settings import Settings
from producers.dataset import RejectedRow, as_utc, open_dataset

_KEYS = ["transaction_id", "user_id"]
_CHARGEBACK_SHARE = 0.7


@dataclass(frozen=True)
class LabelDelays:
    """How outcomes are drawn from ground truth."""

    median_s: float = 2 * 86_400.0
    spread: float = 0.8
    max_s: float = 60 * 86_400.0
    cleared_share: float = 0.2

    @classmethod
    def from_settings(cls, settings: Settings) -> LabelDelays:
        """FRAUD_LABEL_DELAY_MEDIAN_S, _SPREAD, _MAX_S and FRAUD_LABEL_CLEARED_SHARE."""
        return cls(settings.label_delay_median_s, settings.label_delay_spread, settings.label_delay_max_s,
                   settings.label_cleared_share)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` delays in seconds: log-normal around the median, capped."""
        return np.minimum(self.median_s * rng.lognormal(0.0, self.spread, n), self.max_s)


def labels_from_truth(transaction_ids: list[str], user_ids: list[str], event_times: list[datetime], frauds: np.ndarray,
                      delays: LabelDelays, rng: np.random.Generator) -> list[Label]:
    """Every fraud's label and a share of the legitimate ones' (cleared), each after a drawn delay, in reported order."""
    frauds = np.asarray(frauds, dtype=bool)
    labelled = frauds | (rng.random(len(frauds)) < delays.cleared_share)
    delay_s = delays.draw(rng, len(frauds))
    chargeback = rng.random(len(frauds)) < _CHARGEBACK_SHARE
    labels = []
    for i in np.flatnonzero(labelled):
        source = "cleared" if not frauds[i] else "chargeback" if chargeback[i] else "confirmed"
        labels.append(Label(transaction_id=transaction_ids[i], user_id=user_ids[i], is_fraud=bool(frauds[i]),
                            source=source, reported_at=event_times[i] + timedelta(seconds=float(delay_s[i]))))
    return sorted(labels, key=lambda label: (label.reported_at, label.transaction_id))


def read_labels(path: Path, delays: LabelDelays, seed: int = 0) -> Iterator[Label | RejectedRow]:
    """The labels of ``path``: reported outcomes (``is_fraud``) as they are, or ground truth (``fraud``) delayed."""
    names = open_dataset(path, _KEYS).schema.names
    if "is_fraud" in names:
        yield from _reported(path, names)
    elif "fraud" in names and "event_time" in names:
        table = open_dataset(path, _KEYS).to_table(columns=[*_KEYS, "event_time", "fraud"])
        table = as_utc(table.combine_chunks().to_batches()[0]) if table.num_rows else table
        yield from labels_from_truth(table.column("transaction_id").to_pylist(), table.column("user_id").to_pylist(),
                                     table.column("event_time").to_pylist(), table.column("fraud").to_numpy(zero_copy_only=False),
                                     delays, np.random.default_rng(seed))
    else:
        raise FraudError(f"dataset {path} has neither an is_fraud column (outcomes) nor fraud and event_time "
                         f"(a generated dataset's ground truth)")


def _reported(path: Path, names: list[str]) -> Iterator[Label | RejectedRow]:
    columns = [*_KEYS, "is_fraud", *(name for name in ("source", "reported_at") if name in names)]
    now = datetime.now(UTC)
    row_number = 0
    for batch in open_dataset(path, _KEYS).to_batches(columns=columns, batch_size=8192):
        if "reported_at" in columns:
            batch = as_utc(batch, "reported_at")
        for row in batch.to_pylist():
            if row.get("source") is None and isinstance(row["is_fraud"], bool):
                row["source"] = "chargeback" if row["is_fraud"] else "cleared"
            if row.get("reported_at") is None:
                row["reported_at"] = now
            try:
                yield Label.model_validate(row)
            except ValidationError as error:
                yield RejectedRow(row_number, describe_validation_error(error))
            row_number += 1


@dataclass(frozen=True)
class LabelSource:
    """A labels file as a source for `producers.publisher.publish` (opened in the encoder process)."""

    path: Path
    delays: LabelDelays
    seed: int = 0

    def open(self) -> Iterator[Label | RejectedRow]:
        return read_labels(self.path, self.delays, self.seed)
