"""Labels from ground truth (delays, sources, who gets one, when each is due) and from outcome files (validation)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraud.errors import FraudError
from fraud.events import Label, Transaction, decode
from fraud.settings import Settings
from producers.dataset import RejectedRow
from producers.encoding import EncodedFollowUp, FollowUp, encode_chunks
from producers.labels import (
    LabelDelays,
    LabelScheduler,
    ground_truth,
    labelled,
    labels_from_truth,
    read_labels,
    with_labels,
)
from producers.sources import DatasetSource
from producers.synthetic import synthetic_outcomes, synthetic_transactions
from tests.conftest import make_transaction

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _truth(n: int, fraud_every: int = 10) -> tuple[list[str], list[str], list[datetime], np.ndarray]:
    return ([f"tx-{i}" for i in range(n)], [f"user_{i % 50}" for i in range(n)],
            [T0 + timedelta(minutes=i) for i in range(n)], np.arange(n) % fraud_every == 0)


def test_every_fraud_is_reported_late_and_a_share_of_the_legit_ones_is_cleared() -> None:
    ids, users, times, frauds = _truth(20_000)
    delays = LabelDelays(median_s=86_400.0, spread=0.8, max_s=20 * 86_400.0, cleared_share=0.25, chargeback_share=0.6)
    labels = labels_from_truth(ids, users, times, frauds, delays, np.random.default_rng(3))
    by_id = {label.transaction_id: label for label in labels}
    assert {i for i, fraud in zip(ids, frauds, strict=True) if fraud} <= by_id.keys()
    assert all(label.is_fraud == frauds[int(label.transaction_id[3:])] for label in labels)
    legit_labelled = sum(1 for label in labels if not label.is_fraud)
    assert 0.23 < legit_labelled / (~frauds).sum() < 0.27
    assert all(label.source in ("chargeback", "confirmed") for label in labels if label.is_fraud)
    assert all(label.source == "cleared" for label in labels if not label.is_fraud)
    chargebacks = sum(1 for label in labels if label.source == "chargeback")
    assert 0.55 < chargebacks / frauds.sum() < 0.65
    delay_s = np.array([(label.reported_at - times[int(label.transaction_id[3:])]).total_seconds() for label in labels])
    assert delay_s.min() > 0 and delay_s.max() <= 20 * 86_400.0
    assert 0.8 * 86_400 < np.median(delay_s) < 1.2 * 86_400  # hours to days: the median is where it was set
    assert [label.reported_at for label in labels] == sorted(label.reported_at for label in labels)


def test_delays_are_capped_and_log_normal() -> None:
    delays = LabelDelays(median_s=3_600.0, spread=1.5, max_s=10 * 3_600.0)
    drawn = delays.draw(np.random.default_rng(0), 50_000)
    assert drawn.max() == 10 * 3_600.0 and drawn.min() > 0
    uncapped = drawn[drawn < delays.max_s]
    assert abs(np.std(np.log(uncapped / 3_600.0)) - 1.5) < 0.2  # the cap trims the right tail only
    assert 0.9 * 3_600 < np.median(drawn) < 1.1 * 3_600


def test_the_same_seed_gives_the_same_labels() -> None:
    truth = _truth(500)
    first = labels_from_truth(*truth, LabelDelays(), np.random.default_rng(1))
    assert first == labels_from_truth(*truth, LabelDelays(), np.random.default_rng(1))
    assert first != labels_from_truth(*truth, LabelDelays(), np.random.default_rng(2))


def test_the_synthetic_truth_leaves_the_stream_as_it_was() -> None:
    pairs = list(synthetic_outcomes(6000, users=40, seed=4, start=T0))
    assert [t for t, _ in pairs] == list(synthetic_transactions(6000, users=40, seed=4, start=T0))
    share = sum(fraud for _, fraud in pairs) / len(pairs)
    assert 0.005 < share < 0.03  # half of the 3% far from home


def test_each_transaction_is_followed_by_its_label_whose_source_matches_its_truth() -> None:
    pairs = list(synthetic_outcomes(5000, users=40, seed=9, start=T0))
    truth = {t.transaction_id: fraud for t, fraud in pairs}
    delays = LabelDelays(cleared_share=0.1)
    items = list(with_labels(pairs, delays, np.random.default_rng(0), "fraud.labels"))
    follow_ups = [item for item in items if isinstance(item, FollowUp)]
    assert [item for item in items if isinstance(item, Transaction)] == [t for t, _ in pairs]
    for before, item in zip(items, items[1:]):
        if isinstance(item, FollowUp):  # right after its own transaction
            assert isinstance(before, Transaction) and before.transaction_id == item.payload.transaction_id
            assert item.payload.reported_at == before.event_time + timedelta(seconds=item.delay_s)
    assert {f.payload.transaction_id for f in follow_ups if f.payload.is_fraud} == {i for i, fraud in truth.items() if fraud}
    assert all(f.payload.is_fraud == truth[f.payload.transaction_id] and f.kind == f.payload.source for f in follow_ups)
    assert 0.07 < sum(not f.payload.is_fraud for f in follow_ups) / sum(not fraud for fraud in truth.values()) < 0.13


def test_a_dataset_gives_its_is_fraud_column_row_by_row_and_rejected_rows_get_no_label(tmp_path: Path) -> None:
    rows = [make_transaction(n).model_dump() | {"is_fraud": n % 3 == 0} for n in range(40)]
    rows[4]["amount"] = -1.0
    path = tmp_path / "replay.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    pairs = list(ground_truth(DatasetSource(path, limit=30)))
    assert len(pairs) == 30
    assert isinstance(pairs[4][0], RejectedRow)
    assert all(item.transaction_id == f"tx-test-{n}" and fraud == (n % 3 == 0)
               for n, (item, fraud) in enumerate(pairs) if n != 4)
    source = labelled(DatasetSource(path, limit=30), Settings(_env_file=None, label_cleared_share=0.0))
    chunks = list(encode_chunks(source, "test"))
    labels = [decode(f.record[1], Label, f.record[2]) for chunk in chunks for f in chunk.follow_ups]
    assert sorted(label.transaction_id for label in labels) == sorted(f"tx-test-{n}" for n in range(0, 30, 3) if n != 4)
    assert sum(len(chunk.rejected) for chunk in chunks) == 1


def test_a_dataset_without_truth_cannot_be_labelled(tmp_path: Path) -> None:
    path = tmp_path / "plain.parquet"
    pq.write_table(pa.Table.from_pylist([make_transaction(1).model_dump()]), path)
    with pytest.raises(FraudError, match="no is_fraud"):
        labelled(DatasetSource(path), Settings(_env_file=None))


class _Future:
    is_done = True

    def succeeded(self) -> bool:
        return True


class _Producer:
    def __init__(self, clock: list[float]) -> None:
        self.clock, self.sent = clock, []

    def send(self, topic: str, key: bytes, value: bytes, headers: list) -> _Future:
        self.sent.append((self.clock[0], key))
        return _Future()


def _follow_up(name: str, delay_s: float) -> EncodedFollowUp:
    return EncodedFollowUp((name.encode(), b"{}", []), delay_s, "chargeback")


def test_the_scheduler_sends_each_label_when_due_on_the_compressed_clock() -> None:
    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    scheduler = LabelScheduler("labels", time_scale=0.001, clock=lambda: clock[0], sleep=sleep)
    producer = _Producer(clock)
    scheduler.add([_follow_up("six-hours", 6 * 3600.0), _follow_up("one-hour", 3600.0)])
    clock[0] += 3.5
    scheduler.send_due(producer)
    assert producer.sent == []  # 1 h x 0.001 = 3.6 s: not yet
    clock[0] = 103.6
    scheduler.send_due(producer)
    assert producer.sent == [(103.6, b"one-hour")]
    scheduler.drain(producer)
    assert producer.sent[-1] == (pytest.approx(121.6), b"six-hours")  # 6 h x 0.001 = 21.6 s after it was added
    assert scheduler.report.not_published == 0 and scheduler.report.scheduled == 2
    scheduler.settle(1.0)
    assert scheduler.report.delivery.delivered == 2 and scheduler.report.sent_by_source["chargeback"] == 2


def test_the_wait_cap_leaves_later_labels_unpublished_and_counts_them() -> None:
    clock = [0.0]
    scheduler = LabelScheduler("labels", time_scale=1.0, wait_s=10.0, clock=lambda: clock[0],
                               sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    producer = _Producer(clock)
    scheduler.add([_follow_up(f"in-{s}", float(s)) for s in (5, 9, 11, 3_600)])
    scheduler.drain(producer)
    assert [key for _, key in producer.sent] == [b"in-5", b"in-9"]
    assert scheduler.report.not_published == 2 and clock[0] == 9.0  # no waiting for what cannot come in time


def test_an_outcomes_file_gets_defaults_and_bad_rows_are_rejected_with_their_reason(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.jsonl"
    path.write_text("\n".join([
        '{"transaction_id": "tx-1", "user_id": "user_1", "is_fraud": true}',
        '{"transaction_id": "tx-2", "user_id": "user_2", "is_fraud": false, "source": "cleared", "reported_at": "2026-03-02T10:00:00Z"}',
        '{"transaction_id": "tx-3", "user_id": "someone", "is_fraud": true}',
        '{"transaction_id": "tx-4", "user_id": "user_4", "is_fraud": false, "source": "chargeback"}',
        '{"transaction_id": "tx-5", "user_id": "user_5", "is_fraud": true, "source": "lottery"}',
    ]))
    rows = list(read_labels(path, LabelDelays()))
    assert isinstance(rows[0], Label) and rows[0].source == "chargeback"
    assert rows[1] == Label(transaction_id="tx-2", user_id="user_2", is_fraud=False, source="cleared",
                            reported_at=datetime(2026, 3, 2, 10, tzinfo=UTC))
    assert isinstance(rows[2], RejectedRow) and rows[2].row == 2 and "user_id" in rows[2].reason
    assert isinstance(rows[3], RejectedRow) and "contradicts" in rows[3].reason
    assert isinstance(rows[4], RejectedRow) and rows[4].reason.startswith("source:")


def test_a_generated_dataset_is_read_as_ground_truth(tmp_path: Path) -> None:
    ids, users, times, frauds = _truth(300)
    path = tmp_path / "replay.parquet"
    pq.write_table(pa.table({"transaction_id": ids, "user_id": users, "event_time": times, "fraud": frauds,
                             "amount": np.ones(300)}), path)
    labels = list(read_labels(path, LabelDelays(cleared_share=0.0)))
    assert sorted(label.transaction_id for label in labels) == sorted(i for i, f in zip(ids, frauds, strict=True) if f)


def test_a_file_without_outcomes_or_a_key_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "nothing.csv"
    path.write_text("transaction_id,user_id\ntx-1,user_1\n")
    with pytest.raises(FraudError, match="neither an is_fraud column"):
        list(read_labels(path, LabelDelays()))
    path.write_text("transaction_id,is_fraud\ntx-1,true\n")
    with pytest.raises(FraudError, match="lacks column.*user_id"):
        list(read_labels(path, LabelDelays()))
