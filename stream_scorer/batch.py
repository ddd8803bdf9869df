"""What the worker does to one micro-batch, as plain functions (no Kafka, no Faust), so each is unit-testable.

A batch goes: raw records -> `split_valid` (transactions, dead letters) ->
`fraud.features.stream_features` (with the users' state and profiles) ->
predictor -> `score_columns` -> `fraud.events.score_messages`. The Faust agent in `stream_scorer.app` strings
these together and does the I/O.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np

from fraud.events import DEFAULT_LIMITS, InvalidEvent, ScoreColumns, Transaction, TransactionLimits, decode_transactions
from fraud.features import FEATURE_NAMES

Headers = list[tuple[str, bytes]]
user_id_of = operator.attrgetter("user_id")  # a transaction's user, as a C-level callable for map()
DLQ_REASON_HEADER = "fraud-dlq-reason"
DLQ_ORIGIN_HEADER = "fraud-dlq-origin"


class Record(NamedTuple):
    """One consumed Kafka message, as much of it as the worker needs.

    A named tuple, not a frozen dataclass: one is built per consumed record, and a
    frozen dataclass's ``__init__`` took 1 µs of it (its fields set through
    ``object.__setattr__``), a named tuple's 0.3 µs.
    """

    key: bytes | None
    value: bytes | None
    headers: Headers
    topic: str
    partition: int
    offset: int
    timestamp_s: float  # the record's Kafka timestamp: when the event entered Kafka


_new_tuple = tuple.__new__


def from_consumer_records(records: Iterable) -> list[Record]:
    """Kafka clients' ConsumerRecords (aiokafka's, kafka-python's) as `Record`s.

    Built with ``tuple.__new__``, as a named tuple's own ``__new__`` does, without
    that Python-level call: half the time per record.
    """
    return [_new_tuple(Record, (r.key, r.value, list(r.headers or []), r.topic, r.partition, r.offset, r.timestamp / 1000.0))
            for r in records]


@dataclass(frozen=True)
class DeadLetter:
    """A record that is not a valid transaction: its original bytes and why, for `transactions-dlq`."""

    record: Record
    reason: str

    @property
    def headers(self) -> Headers:
        origin = f"{self.record.topic}/{self.record.partition}/{self.record.offset}"
        kept = [(k, v) for k, v in self.record.headers if k not in (DLQ_REASON_HEADER, DLQ_ORIGIN_HEADER)]
        return [*kept, (DLQ_REASON_HEADER, self.reason.encode()), (DLQ_ORIGIN_HEADER, origin.encode())]


def split_valid(records: Sequence[Record], limits: TransactionLimits = DEFAULT_LIMITS,
                ) -> tuple[list[tuple[Record, Transaction]], list[DeadLetter]]:
    """Decode every record (either CloudEvents content mode): valid transactions in order, and dead letters with reasons."""
    valid, dead = [], []
    decoded = decode_transactions([(record.value, record.headers) for record in records], limits)
    for record, transaction in zip(records, decoded, strict=True):
        if isinstance(transaction, InvalidEvent):
            dead.append(DeadLetter(record, transaction.reason))
            continue
        if record.key is not None and record.key != transaction.user_id.encode():
            # Keyed by someone else, it sits on another user's partition: the user's state would split.
            dead.append(DeadLetter(record, f"key {record.key[:60]!r} is not the user_id {transaction.user_id!r}"))
            continue
        valid.append((record, transaction))
    return valid, dead


def non_finite_rows(features: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[int, str]:
    """Rows (by index) with a feature the model cannot take (NaN, inf, or beyond float32), and why.

    The schema's bounds keep the inputs sane; this is the last check before the
    predictor, so that no row it would refuse ever reaches it.
    """
    matrix = np.column_stack([np.asarray(features[name], dtype=np.float64) for name in names])
    with np.errstate(over="ignore"):  # an overflow to inf is what is looked for
        bad = ~np.isfinite(matrix.astype(np.float32))
    reasons = {}
    for row in np.flatnonzero(bad.any(axis=1)).tolist():
        column = int(np.flatnonzero(bad[row])[0])
        reasons[row] = f"feature {names[column]} is {float(matrix[row, column])!r}: not a finite float32"
    return reasons


def feature_matrix(features: Mapping[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """The model's input [N, F] (float32), columns in the model's own order."""
    missing = [name for name in names if name not in features]
    if missing:
        raise ValueError(f"the model wants features this worker does not compute: {missing}")
    return np.column_stack([np.asarray(features[name], dtype=np.float32) for name in names])


def latest_per_user(transactions: Sequence[Transaction], features: Mapping[str, np.ndarray]) -> dict[str, object]:
    """Columns of one row per user (their last transaction in the batch) for the Feast push source.

    Plain columns, not a DataFrame: building frames is left to the push process
    (`stream_scorer.feast_io.activity_frame`), once per push rather than per batch.
    """
    last = dict(zip(map(user_id_of, transactions), range(len(transactions))))  # a user's later rows overwrite earlier ones
    rows = list(last.values())
    latest = list(map(transactions.__getitem__, rows))
    seconds = np.fromiter(map(datetime.timestamp, map(operator.attrgetter("event_time"), latest)), np.float64, len(rows))
    return {
        "user_id": list(last),
        "transaction_id": list(map(operator.attrgetter("transaction_id"), latest)),
        # Microseconds since the epoch: one buffer to pickle to the push process, not a datetime object per row.
        "event_timestamp": np.rint(seconds * 1e6).astype(np.int64),
        **{name: np.asarray(features[name], dtype=np.float64)[rows] for name in FEATURE_NAMES},
    }


@dataclass(frozen=True)
class Prediction:
    """The predictor's answer for one batch."""

    scores: np.ndarray  # float32 [N]
    model_version: str
    threshold: float


def score_columns(
    scored: Sequence[tuple[Record, Transaction]],
    features: Mapping[str, np.ndarray],
    prediction: Prediction,
    model_name: str,
    scored_at: datetime | None = None,
) -> ScoreColumns:
    """The scores of a batch as columns, carrying the feature values the model saw (the audit trail).

    One conversion to Python floats per column, not one per value; the decision follows
    from score and threshold in `score_messages`, so the two cannot disagree.
    """
    scored_at = scored_at or datetime.now(UTC)
    timestamps = np.fromiter((record.timestamp_s for record, _ in scored), np.float64, len(scored))
    return ScoreColumns(
        transactions=[transaction for _, transaction in scored],
        scores=np.clip(prediction.scores.astype(np.float64), 0.0, 1.0).tolist(),
        threshold=float(prediction.threshold),
        model_name=model_name,
        model_version=prediction.model_version,
        scored_at=scored_at,
        latency_ms=np.maximum(0.0, (scored_at.timestamp() - timestamps) * 1000.0).tolist(),
        features={name: np.asarray(features[name], dtype=np.float64).tolist() for name in FEATURE_NAMES},
    )


def users_of(transactions: Iterable[Transaction]) -> list[str]:
    """Distinct user ids, in first-seen order."""
    return list(dict.fromkeys(map(user_id_of, transactions)))
