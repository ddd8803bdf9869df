"""Transaction sources: the synthetic stream and dataset replay."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from fraud.errors import FraudError
from fraud.events import Transaction
from producers.dataset import RejectedRow, read_transactions
from producers.synthetic import synthetic_transactions
from tests.conftest import make_transaction

START = datetime(2026, 3, 1, tzinfo=UTC)


def test_synthetic_stream_is_exact_valid_and_repeatable() -> None:
    first = list(synthetic_transactions(5000, users=50, seed=7, start=START))
    again = list(synthetic_transactions(5000, users=50, seed=7, start=START))
    other = list(synthetic_transactions(5000, users=50, seed=8, start=START))
    assert len(first) == 5000
    assert first == again
    assert first != other
    assert len({t.transaction_id for t in first}) == 5000
    assert {t.user_id for t in first} <= {f"user_{n}" for n in range(50)}
    times = [t.event_time for t in first]
    assert times == sorted(times) and times[0] >= START


def test_synthetic_users_spend_and_live_differently() -> None:
    events = list(synthetic_transactions(20_000, users=20, seed=1, start=START))
    by_user: dict[str, list[Transaction]] = {}
    for event in events:
        by_user.setdefault(event.user_id, []).append(event)
    medians = sorted(sorted(e.amount for e in rows)[len(rows) // 2] for rows in by_user.values())
    assert medians[-1] > 2 * medians[0]  # typical spend differs per user
    assert all(not (e.online_order and e.used_chip) for e in events)  # no chip on an online order


def _rows(count: int) -> list[dict]:
    return [make_transaction(n, event_time=START).model_dump() | {"fraud": n % 2 == 0} for n in range(count)]


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_dataset_replay_reads_every_format(tmp_path: Path, suffix: str) -> None:
    rows = _rows(30)
    path = tmp_path / f"transactions{suffix}"
    table = pa.Table.from_pylist(rows)
    if suffix == ".parquet":
        pq.write_table(table, path)
    elif suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
    read = list(read_transactions(path))
    assert [t.transaction_id for t in read] == [r["transaction_id"] for r in rows]
    assert all(isinstance(t, Transaction) and t.event_time == START for t in read)


def test_dataset_naive_timestamps_are_read_as_utc_and_limit_applies(tmp_path: Path) -> None:
    rows = [r | {"event_time": START.replace(tzinfo=None)} for r in _rows(10)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "naive.parquet")
    read = list(read_transactions(tmp_path / "naive.parquet", limit=4))
    assert len(read) == 4 and all(t.event_time == START for t in read)


def test_dataset_bad_rows_are_rejected_with_a_reason_not_dropped(tmp_path: Path) -> None:
    rows = _rows(5)
    rows[1]["amount"] = -10.0
    rows[3]["user_id"] = "bob"
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "bad.parquet")
    read = list(read_transactions(tmp_path / "bad.parquet"))
    assert len(read) == 5
    rejected = [r for r in read if isinstance(r, RejectedRow)]
    assert [(r.row, r.reason.split(":")[0]) for r in rejected] == [(1, "amount"), (3, "user_id")]


def test_dataset_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FraudError, match="does not exist"):
        list(read_transactions(tmp_path / "nope.parquet"))
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(FraudError, match="unknown format"):
        list(read_transactions(tmp_path / "x.txt"))
    pq.write_table(pa.table({"transaction_id": ["a"]}), tmp_path / "thin.parquet")
    with pytest.raises(FraudError, match="lacks column"):
        list(read_transactions(tmp_path / "thin.parquet"))
