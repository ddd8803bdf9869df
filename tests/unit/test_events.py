"""Event schemas and their CloudEvents 1.0 structured-mode encoding."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cloudevents.kafka import to_structured
from pydantic import ValidationError

from fraud.events import (
    SCORE_TYPE,
    TRANSACTION_TYPE,
    InvalidEvent,
    Score,
    Transaction,
    decode,
    encode,
    to_cloudevent,
)
from tests.conftest import make_transaction


def make_score(**changes: object) -> Score:
    fields: dict[str, object] = {
        "transaction_id": "tx-1", "user_id": "user_0", "event_time": datetime(2026, 1, 1, tzinfo=UTC),
        "score": 0.91, "decision": "fraud", "threshold": 0.5, "model_name": "fraud-detection",
        "model_version": "3", "scored_at": datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC), "latency_ms": 4.2,
        "features": {"distance_from_home": 120.5, "online_order": 1.0},
    }
    fields.update(changes)
    return Score(**fields)


def test_transaction_round_trips_through_a_structured_cloudevent() -> None:
    transaction = make_transaction(3)
    key, value, headers = encode(transaction, "test-source")
    assert key == b"user_3"
    assert headers == [("content-type", b"application/cloudevents+json")]
    envelope = json.loads(value)
    assert envelope["specversion"] == "1.0"
    assert envelope["type"] == TRANSACTION_TYPE
    assert envelope["id"] == transaction.transaction_id
    assert envelope["source"] == "test-source"
    assert envelope["subject"] == envelope["partitionkey"] == "user_3"
    assert envelope["time"] == "2026-01-02T03:04:05Z"
    assert decode(value, Transaction) == transaction


def test_score_round_trips_and_carries_its_features() -> None:
    score = make_score()
    _, value, _ = encode(score, "scorer")
    assert json.loads(value)["type"] == SCORE_TYPE
    assert decode(value, Score) == score
    assert decode(value, Score).features["distance_from_home"] == 120.5


def test_orjson_envelope_matches_the_sdks_default_json() -> None:
    for event in (to_cloudevent(make_transaction(n), "s") for n in range(20)):
        sdk_default = to_structured(event).value
        _, ours, _ = encode(decode(sdk_default, Transaction), "s")
        assert json.loads(ours) == json.loads(sdk_default)


def test_event_time_is_normalised_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    transaction = make_transaction(event_time=datetime(2026, 1, 2, 4, 4, 5, tzinfo=cet))
    assert transaction.event_time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert transaction.event_time.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": -5.0}, "amount"),
        ({"amount": float("inf")}, "amount"),
        ({"user_id": "alice"}, "user_id"),
        ({"latitude": 91.0}, "latitude"),
        ({"used_chip": "yes"}, "used_chip"),
        ({"event_time": datetime(2026, 1, 1)}, "event_time"),  # naive: which zone? refuse
        ({"merchant_id": ""}, "merchant_id"),
    ],
)
def test_validation_error_names_the_wrong_field(changes: dict, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make_transaction(**changes)
    assert {error["loc"][0] for error in caught.value.errors()} == {field}


def _with_data(**changes: object) -> bytes:
    _, value, _ = encode(make_transaction(), "s")
    envelope = json.loads(value)
    for name, new in changes.items():
        if new is None:
            del envelope["data"][name]
        else:
            envelope["data"][name] = new
    return json.dumps(envelope).encode()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty message"),
        (b"{not json", "not a JSON CloudEvent"),
        (b"[1, 2]", "not a JSON CloudEvent object"),
        (b'{"specversion": "1.0", "id": "x"}', "invalid CloudEvent attributes"),
        (_with_data(amount=-3), "amount: Input should be greater than or equal to 0 (got -3)"),
        (_with_data(amount="12.5"), "amount: Input should be a valid number"),
        (_with_data(user_id=None), "user_id: Field required"),
        (_with_data(surprise=1), "surprise: Extra inputs are not permitted"),
    ],
)
def test_decode_says_why_a_message_is_not_a_transaction(value: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode(value, Transaction)
    assert reason in caught.value.reason


def test_decode_refuses_the_wrong_event_type() -> None:
    _, value, _ = encode(make_transaction(), "s")
    with pytest.raises(InvalidEvent, match="expected 'fraud.score.v1'"):
        decode(value, Score)


def test_score_decision_must_agree_with_score_and_threshold() -> None:
    with pytest.raises(ValidationError, match="contradicts"):
        make_score(score=0.2, decision="fraud")
    assert make_score(score=0.5, threshold=0.5, decision="fraud").decision == "fraud"
    with pytest.raises(ValidationError, match="score"):
        make_score(score=1.5)
