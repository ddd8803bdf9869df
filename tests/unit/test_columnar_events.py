"""The worker's column-wise event paths give what the one-event-at-a-time `decode` and `encode` give, record for record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud.events import (
    InvalidEvent,
    Score,
    ScoreColumns,
    Transaction,
    TransactionLimits,
    decode,
    decode_transactions,
    encode,
    score_messages,
)
from tests.conftest import make_transaction

LIMITS = TransactionLimits(max_amount=1000.0, max_future_s=60.0)


def one_by_one(messages: list, limits: TransactionLimits = LIMITS) -> list:
    results = []
    for value, headers in messages:
        try:
            results.append(decode(value, Transaction, headers, limits))
        except InvalidEvent as error:
            results.append(error.reason)
    return results


def columnar(messages: list, limits: TransactionLimits = LIMITS) -> list:
    return [result.reason if isinstance(result, InvalidEvent) else result for result in decode_transactions(messages, limits)]


def with_data(**changes: object) -> bytes:
    """A structured transaction event whose JSON data has ``changes`` (None: the field is dropped)."""
    envelope = orjson.loads(encode(make_transaction(3), "tests")[1])
    for name, value in changes.items():
        if value is None:
            envelope["data"].pop(name)
        else:
            envelope["data"][name] = value
    return orjson.dumps(envelope)


def with_envelope(**changes: object) -> bytes:
    envelope = orjson.loads(encode(make_transaction(4), "tests")[1])
    envelope.update(changes)
    return orjson.dumps(envelope)


STRUCTURED = [("content-type", b"application/cloudevents+json")]
ODD_MESSAGES = [
    (encode(make_transaction(1), "tests")[1], STRUCTURED),
    (encode(make_transaction(2, event_time=datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)), "tests")[1], None),
    (b"", None), (b"not json", None), (b"[1, 2]", STRUCTURED),
    (with_data(amount=-5.0), STRUCTURED), (with_data(amount=1000.5), STRUCTURED), (with_data(amount=12), STRUCTURED),
    (with_data(amount="12.5"), STRUCTURED), (with_data(latitude=91.0), STRUCTURED), (with_data(longitude=-180.5), None),
    (with_data(used_chip=1), STRUCTURED), (with_data(user_id="user_x"), STRUCTURED), (with_data(user_id="user_1\n"), None),
    (with_data(user_id="user_\u0661"), None), (with_data(transaction_id=""), None), (with_data(merchant_id="m" * 201), None),
    (with_data(merchant_id="m" * 200), None), (with_data(merchant_category=None), None), (with_data(extra="x"), None),
    (with_data(event_time="1999-12-31T23:59:59Z"), None), (with_data(event_time="2026-01-02T03:04:05+02:00"), None),
    (with_data(event_time="2026-01-02 03:04:05Z"), None), (with_data(event_time="2026-01-02T03:04:05"), None),
    (with_data(event_time="2026-13-02T03:04:05Z"), None), (with_data(event_time="2026-01-02T03:04:05.1234567Z"), None),
    (with_data(event_time="20260102T030405Z"), None),
    (with_data(event_time=(datetime.now(UTC) + timedelta(hours=1)).isoformat()), None),
    (with_envelope(type="fraud.score.v1"), None), (with_envelope(specversion="0.3"), None),
    (with_envelope(specversion="2.0"), None), (with_envelope(data_base64="e30="), None), (with_envelope(source=7), None),
    (with_envelope(data=[1]), None), (with_envelope(comexampleextension="x"), None),
    (encode(make_transaction(5), "tests")[1], [("content-type", b"application/json"), ("ce_specversion", b"1.0")]),
]


def test_decode_transactions_gives_what_decode_gives_for_every_kind_of_message() -> None:
    assert columnar(ODD_MESSAGES) == one_by_one(ODD_MESSAGES)
    assert isinstance(columnar(ODD_MESSAGES)[0], Transaction)  # not everything refused


def test_the_configured_limits_hold_on_the_column_wise_path() -> None:
    message = [(with_data(amount=150.0), STRUCTURED)]
    tight = TransactionLimits(max_amount=100.0)
    assert columnar(message, tight) == one_by_one(message, tight) == ["amount: Input should be less than or equal to 100 (got 150.0)"]


_JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                         st.text(max_size=30), st.sampled_from(["user_12", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05.5-01:00"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(sorted(Transaction.model_fields)), _JSON_VALUES), max_size=3))
def test_any_field_changed_to_any_json_value_decodes_alike(changes: list) -> None:
    messages = [(with_data(**dict(changes)), STRUCTURED), (encode(make_transaction(6), "tests")[1], STRUCTURED)]
    assert columnar(messages) == one_by_one(messages)


@pytest.mark.parametrize("features", [{"amount": [12.5, 3.0], "history_count": [0.0, 1.0]}, {}])
def test_score_messages_are_the_bytes_encode_gives(features: dict) -> None:
    transactions = [make_transaction(0), make_transaction(1, event_time=datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)),
                    make_transaction(2, transaction_id='tx "quoted" \\ é \u2028 end')]  # escapes, non-ASCII
    features = {name: [*values, 1e-7] for name, values in features.items()}
    scores, decisions, latencies = [0.25, 0.75, 0.5], ["legit", "fraud", "fraud"], [12.0, 0.0, 1234.5678]  # 0.5: at the threshold
    scored_at = datetime(2026, 11, 28, 12, 0, 0, 5, tzinfo=UTC)
    columns = ScoreColumns(transactions, scores, 0.5, "fraud-detection", "3", scored_at, latencies, features)
    expected = [encode(Score(transaction_id=t.transaction_id, user_id=t.user_id, event_time=t.event_time, score=score,
                             decision=decision, threshold=0.5, model_name="fraud-detection", model_version="3",
                             scored_at=scored_at, latency_ms=latency,
                             features={name: values[row] for name, values in features.items()}), 'worker "é"')
                for row, (t, score, decision, latency) in enumerate(zip(transactions, scores, decisions, latencies, strict=True))]
    assert score_messages(columns, 'worker "é"') == expected
