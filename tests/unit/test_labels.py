"""Labels from ground truth (delays, sources, who gets one) and from outcome files (validation, defaults)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraud.errors import FraudError
from fraud.events import Label
from producers.dataset import RejectedRow
from producers.labels import LabelDelays, labels_from_truth, read_labels

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _truth(n: int, fraud_every: int = 10) -> tuple[list[str], list[str], list[datetime], np.ndarray]:
    return ([f"tx-{i}" for i in range(n)], [f"user_{i % 50}" for i in range(n)],
            [T0 + timedelta(minutes=i) for i in range(n)], np.arange(n) % fraud_every == 0)


def test_every_fraud_is_reported_late_and_a_share_of_the_legit_ones_is_cleared() -> None:
    ids, users, times, frauds = _truth(20_000)
    delays = LabelDelays(median_s=86_400.0, spread=0.8, max_s=20 * 86_400.0, cleared_share=0.25)
    labels = labels_from_truth(ids, users, times, frauds, delays, np.random.default_rng(3))
    by_id = {label.transaction_id: label for label in labels}
    assert {i for i, fraud in zip(ids, frauds, strict=True) if fraud} <= by_id.keys()
    legit_labelled = sum(1 for label in labels if not label.is_fraud)
    assert 0.23 < legit_labelled / (~frauds).sum() < 0.27
    assert all(label.source in ("chargeback", "confirmed") for label in labels if label.is_fraud)
    assert all(label.source == "cleared" for label in labels if not label.is_fraud)
    delay_s = np.array([(label.reported_at - times[int(label.transaction_id[3:])]).total_seconds() for label in labels])
    assert delay_s.min() > 0 and delay_s.max() <= 20 * 86_400.0
    assert 0.8 * 86_400 < np.median(delay_s) < 1.2 * 86_400  # hours to days: the median is where it was set
    assert [label.reported_at for label in labels] == sorted(label.reported_at for label in labels)


def test_the_same_seed_gives_the_same_labels() -> None:
    truth = _truth(500)
    first = labels_from_truth(*truth, LabelDelays(), np.random.default_rng(1))
    assert first == labels_from_truth(*truth, LabelDelays(), np.random.default_rng(1))
    assert first != labels_from_truth(*truth, LabelDelays(), np.random.default_rng(2))


def test_an_outcomes_file_gets_defaults_and_bad_rows_are_rejected_with_their_reason(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.jsonl"
    path.write_text("\n".join([
        '{"transaction_id": "tx-1", "user_id": "user_1", "is_fraud": true}',
        '{"transaction_id": "tx-2", "user_id": "user_2", "is_fraud": false, "source": "cleared", "reported_at": "2026-03-02T10:00:00Z"}',
        '{"transaction_id": "tx-3", "user_id": "someone", "is_fraud": true}',
        '{"transaction_id": "tx-4", "user_id": "user_4", "is_fraud": false, "source": "chargeback"}',
    ]))
    rows = list(read_labels(path, LabelDelays()))
    assert isinstance(rows[0], Label) and rows[0].source == "chargeback"
    assert rows[1] == Label(transaction_id="tx-2", user_id="user_2", is_fraud=False, source="cleared",
                            reported_at=datetime(2026, 3, 2, 10, tzinfo=UTC))
    assert isinstance(rows[2], RejectedRow) and "user_id" in rows[2].reason
    assert isinstance(rows[3], RejectedRow) and "contradicts" in rows[3].reason


def test_a_generated_dataset_is_read_as_ground_truth(tmp_path: Path) -> None:
    ids, users, times, frauds = _truth(300)
    path = tmp_path / "replay.parquet"
    pq.write_table(pa.table({"transaction_id": ids, "user_id": users, "event_time": times, "fraud": frauds,
                             "amount": np.ones(300)}), path)
    labels = list(read_labels(path, LabelDelays(cleared_share=0.0)))
    assert sorted(label.transaction_id for label in labels) == sorted(i for i, f in zip(ids, frauds, strict=True) if f)


def test_a_file_without_outcomes_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "nothing.csv"
    path.write_text("transaction_id,user_id\ntx-1,user_1\n")
    with pytest.raises(FraudError, match="neither an is_fraud column"):
        list(read_labels(path, LabelDelays()))
