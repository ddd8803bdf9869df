"""`fraud labels` and `fraud produce --labels` against the real broker, run in-process through `fraud.cli.main`.

Topics are read back with a plain kafka-python consumer, and every record is decoded as the event it must be.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from fraud.cli import main
from fraud.events import LABEL_TYPE, Label, Transaction, decode
from fraud.settings import Settings
from producers.synthetic import synthetic_outcomes
from tests.conftest import make_transaction


def read_topic(settings: Settings, topic: str) -> list[ConsumerRecord]:
    """Every record of ``topic``, from its beginning to its end as of now."""
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for batch in consumer.poll(timeout_ms=5_000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def labels_of(records: list[ConsumerRecord]) -> list[Label]:
    """Decode every record as a label event keyed by its user."""
    labels = [decode(r.value, Label, r.headers) for r in records]
    assert all(r.key.decode() == label.user_id for r, label in zip(records, labels, strict=True))
    assert all(dict(r.headers)["content-type"] == b"application/cloudevents+json" for r in records)
    return labels


@pytest.fixture
def use_broker(kafka_settings: Settings, new_topic: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Point the CLI at the test broker and a fresh labels topic (returned); keyword arguments set FRAUD_* variables."""
    def configure(**env: str) -> str:
        topic = new_topic("labels")
        for name, value in {"kafka_bootstrap": kafka_settings.kafka_bootstrap, "topic_labels": topic, **env}.items():
            monkeypatch.setenv(f"FRAUD_{name.upper()}", value)
        return topic
    return configure


def test_outcomes_are_published_as_they_were_reported(use_broker: Callable[..., str], kafka_settings: Settings,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topic = use_broker()
    reported = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    written = [Label(transaction_id=f"tx-{n}", user_id=f"user_{n % 9}", is_fraud=n % 4 == 0,
                     source=("chargeback" if n % 8 == 0 else "confirmed") if n % 4 == 0 else "cleared",
                     reported_at=reported + timedelta(hours=n)) for n in range(60)]
    path = tmp_path / "outcomes.jsonl"
    path.write_text("".join(label.model_dump_json() + "\n" for label in written))
    assert main(["labels", "--dataset", str(path)]) == 0
    assert "delivered 60  failed 0  rejected 0" in capsys.readouterr().out
    labels = labels_of(read_topic(kafka_settings, topic))
    assert sorted(labels, key=lambda label: int(label.transaction_id[3:])) == written
    assert LABEL_TYPE == "fraud.label.v1"


def test_bad_outcome_rows_are_counted_and_named_and_the_good_ones_go_out(
        use_broker: Callable[..., str], kafka_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topic = use_broker()
    path = tmp_path / "outcomes.csv"
    path.write_text("transaction_id,user_id,is_fraud,source\ntx-1,user_1,true,\ntx-2,nobody,false,\n"
                    "tx-3,user_3,false,\ntx-4,user_4,true,cleared\n")
    assert main(["labels", "--dataset", str(path)]) == 1
    err = capsys.readouterr().err
    assert "2 rows rejected: row 1: user_id" in err and "row 3: event: Value error, source 'cleared' contradicts" in err
    assert "Traceback" not in err
    labels = labels_of(read_topic(kafka_settings, topic))
    assert sorted((label.transaction_id, label.source) for label in labels) == [("tx-1", "chargeback"), ("tx-3", "cleared")]


def test_a_missing_file_or_column_is_one_line(use_broker: Callable[..., str], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    use_broker()
    assert main(["labels", "--dataset", str(tmp_path / "none.parquet")]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"fraud: dataset {tmp_path / 'none.parquet'} does not exist"]
    path = tmp_path / "outcomes.csv"
    path.write_text("transaction_id,is_fraud\ntx-1,true\n")
    assert main(["labels", "--dataset", str(path)]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"fraud: dataset {path} lacks column(s): user_id"]


def test_ground_truth_becomes_delayed_labels_on_the_topic(use_broker: Callable[..., str], kafka_settings: Settings,
                                                          tmp_path: Path) -> None:
    topic = use_broker(label_cleared_share="0.5")
    n = 400
    start = datetime(2026, 3, 1, tzinfo=UTC)
    frauds = np.arange(n) % 8 == 0
    path = tmp_path / "replay.parquet"
    pq.write_table(pa.table({"transaction_id": [f"tx-{i}" for i in range(n)], "user_id": [f"user_{i % 40}" for i in range(n)],
                             "event_time": [start + timedelta(minutes=i) for i in range(n)], "fraud": frauds}), path)
    assert main(["labels", "--dataset", str(path)]) == 0
    labels = labels_of(read_topic(kafka_settings, topic))
    assert {label.transaction_id for label in labels if label.is_fraud} == {f"tx-{i}" for i in np.flatnonzero(frauds)}
    assert 0.35 * (~frauds).sum() < sum(not label.is_fraud for label in labels) < 0.65 * (~frauds).sum()
    assert all(label.reported_at > start + timedelta(minutes=int(label.transaction_id[3:])) for label in labels)


def test_produce_with_labels_labels_every_fraud_on_the_compressed_schedule(
        use_broker: Callable[..., str], kafka_settings: Settings, new_topic: Callable[..., str],
        capsys: pytest.CaptureFixture[str]) -> None:
    scale, max_delay_s = 1e-5, 4 * 86_400.0  # a label is due at most 3.5 s after its transaction
    topic = use_broker(label_time_scale=str(scale), label_delay_max_s=str(max_delay_s))
    transactions_topic = new_topic("transactions")
    assert main(["produce", "--count", "3000", "--users", "50", "--seed", "5", "--topic", transactions_topic, "--labels"]) == 0
    printed = capsys.readouterr().out
    transactions = {decode(r.value, Transaction, r.headers).transaction_id: r for r in read_topic(kafka_settings, transactions_topic)}
    records = read_topic(kafka_settings, topic)
    labels = labels_of(records)
    truth = {t.transaction_id: fraud for t, fraud in synthetic_outcomes(3000, users=50, seed=5)}
    assert transactions.keys() == truth.keys()
    frauds = {tx for tx, fraud in truth.items() if fraud}
    assert len(frauds) > 10
    assert {label.transaction_id for label in labels if label.is_fraud} == frauds
    assert all(label.is_fraud == truth[label.transaction_id] for label in labels)
    assert len({label.transaction_id for label in labels}) == len(labels)
    assert f"labels: delivered {len(labels):,} (" in printed and "not published 0 " in printed
    for record, label in zip(records, labels, strict=True):
        transaction = transactions[label.transaction_id]
        event_time = decode(transaction.value, Transaction, transaction.headers).event_time
        delay_s = (label.reported_at - event_time).total_seconds()
        assert 0 < delay_s <= max_delay_s  # reported_at keeps the full delay ...
        waited_s = (record.timestamp - transaction.timestamp) / 1000  # ... the publication is compressed
        assert delay_s * scale - 0.002 <= waited_s <= delay_s * scale + 2.0, (label, waited_s)


def test_produce_with_labels_stops_waiting_at_the_cap_and_says_how_many_are_left(
        use_broker: Callable[..., str], kafka_settings: Settings, new_topic: Callable[..., str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    topic = use_broker(label_delay_median_s="1.5", label_delay_spread="1.0", label_cleared_share="0")
    rows = [make_transaction(n).model_dump() | {"is_fraud": n % 2 == 0} for n in range(200)]
    path = tmp_path / "replay.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert main(["produce", "--dataset", str(path), "--count", "200", "--topic", new_topic("transactions"),
                 "--labels", "--labels-wait-s", "1.5"]) == 0
    summary = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("labels:"))
    delivered = int(summary.split("delivered ")[1].split()[0])
    not_published = int(summary.split("not published ")[1].split()[0])
    assert delivered + not_published == 100 and 20 < delivered < 80  # about half the delays are under 1.5 s
    labels = labels_of(read_topic(kafka_settings, topic))
    assert len(labels) == delivered and all(label.is_fraud for label in labels)
