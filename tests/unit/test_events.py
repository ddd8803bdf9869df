"""Event schemas, their CloudEvents 1.0 encoding (structured out, both content modes in), and their bounds."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cloudevents.kafka import to_binary, to_structured
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fraud.events import (
    DEFAULT_LIMITS,
    SCORE_TYPE,
    TRANSACTION_TYPE,
    InvalidEvent,
    Score,
    Transaction,
    TransactionLimits,
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
        (b"[1, 2]", "not a CloudEvent: the value is an array, not a JSON object"),
        (_with_data(merchant_id="\ud800"), "not a JSON CloudEvent: "),  # a lone surrogate
        (b'{"specversion": "1.0", "id": "x"}', "invalid CloudEvent attributes: missing source, type"),
        (b'{"specversion": "2.0", "id": "x", "source": "s", "type": "t"}', "specversion '2.0' is not 1.0 or 0.3"),
        (b'{"specversion": [], "id": "x", "source": "s", "type": "t"}', "specversion [] is not 1.0 or 0.3"),
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


# --- binary content mode ------------------------------------------------------------------------------


def _binary(payload: Transaction, **header_changes: bytes | None) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A binary-mode Kafka message made by the cloudevents SDK, as Knative's KafkaSink sends; None drops a header."""
    message = to_binary(to_cloudevent(payload, "knative-kafkasink"))
    headers = {**message.headers, **header_changes}
    assert isinstance(message.value, bytes)
    return message.value, [(name, content) for name, content in headers.items() if content is not None]


def test_a_binary_mode_event_decodes_to_the_same_transaction_as_structured_mode() -> None:
    transaction = make_transaction(4)
    value, headers = _binary(transaction)
    assert {"ce_specversion", "ce_id", "ce_source", "ce_type"} <= dict(headers).keys()
    assert json.loads(value) == transaction.model_dump(mode="json")  # the value is the data alone
    _, structured, structured_headers = encode(transaction, "s")
    assert decode(value, Transaction, headers) == decode(structured, Transaction, structured_headers) == transaction
    assert decode(value, Transaction, dict(headers)) == transaction  # a header dict works too


def test_the_content_type_header_picks_structured_mode_over_ce_headers() -> None:
    _, value, _ = encode(make_transaction(), "s")
    headers = [("Content-Type", b"application/cloudevents+json; charset=utf-8"), ("ce_specversion", b"1.0")]
    assert decode(value, Transaction, headers) == make_transaction()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"ce_type": None}, "invalid CloudEvent attributes: missing ce_type"),
        ({"ce_source": None, "ce_id": None}, "invalid CloudEvent attributes: missing ce_id, ce_source"),
        ({"ce_specversion": b"9.9"}, "invalid CloudEvent attributes: specversion '9.9' is not 1.0 or 0.3"),
        ({"ce_source": b"\xff\xfe"}, "invalid CloudEvent attributes: header ce_source is not UTF-8"),
        ({"ce_type": b"fraud.label.v1"}, "CloudEvent type is 'fraud.label.v1', expected 'fraud.transaction.v1'"),
    ],
)
def test_a_broken_binary_mode_event_gets_a_clear_reason(changes: dict[str, bytes | None], reason: str) -> None:
    value, headers = _binary(make_transaction(), **changes)
    with pytest.raises(InvalidEvent) as caught:
        decode(value, Transaction, headers)
    assert caught.value.reason.startswith(reason), caught.value.reason


def test_binary_mode_data_that_is_not_json_is_refused() -> None:
    _, headers = _binary(make_transaction())
    with pytest.raises(InvalidEvent, match=r"CloudEvent data \(binary mode\) is not JSON"):
        decode(b"{amount: 1", Transaction, headers)


@pytest.mark.parametrize("headers", [None, [], [("content-type", b"application/json")], [("traceparent", b"00-ab")]])
def test_plain_json_without_an_envelope_is_not_a_cloudevent(headers: list[tuple[str, bytes]] | None) -> None:
    plain = json.dumps(make_transaction().model_dump(mode="json")).encode()
    with pytest.raises(InvalidEvent) as caught:
        decode(plain, Transaction, headers)
    assert caught.value.reason == ("not a CloudEvent: no specversion attribute in the value (structured mode) "
                                   "and no ce_specversion header (binary mode)")


def test_a_declared_structured_event_without_specversion_says_so() -> None:
    plain = json.dumps({"type": TRANSACTION_TYPE, "source": "s", "data": {}}).encode()
    with pytest.raises(InvalidEvent) as caught:
        decode(plain, Transaction, [("content-type", b"application/cloudevents+json")])
    assert caught.value.reason == "not a CloudEvent: no specversion attribute in the value (structured mode)"


# --- bounds -------------------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("amount", 1e39, "amount: Input should be less than or equal to 1000000 (got 1e+39)"),
        ("amount", "NaN", "amount: Input should be a valid number (got 'NaN')"),
        ("amount", 10**30, "amount: Input should be less than or equal to 1000000"),
        ("latitude", 91, "latitude: Input should be less than or equal to 90 (got 91)"),
        ("longitude", -180.5, "longitude: Input should be greater than or equal to -180"),
        ("event_time", "1900-01-01T00:00:00Z", "event_time: Input should be on or after 2000-01-01T00:00:00Z"),
        ("event_time", "1970-01-01T00:00:00Z", "event_time: Input should be on or after 2000-01-01T00:00:00Z"),
        ("event_time", "0001-01-01T00:00:00+01:00", "event_time: Value error, out of range in UTC"),
        ("event_time", _iso(datetime.now(UTC) + timedelta(days=2)), "event_time: Input should be at most 86400 s in the future"),
    ],
)
def test_a_value_out_of_bounds_is_refused_naming_the_field_and_value(field: str, value: object, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode(_with_data(**{field: value}), Transaction)
    assert caught.value.reason.startswith(reason), caught.value.reason


@pytest.mark.parametrize(("field", "value"), [("amount", float("-inf")), ("amount", float("nan")), ("latitude", float("inf"))])
def test_non_finite_floats_are_refused_when_built_in_python(field: str, value: float) -> None:
    changes: dict[str, object] = {field: value}
    with pytest.raises(ValidationError) as caught:
        make_transaction(0, **changes)
    assert {error["loc"][0] for error in caught.value.errors()} == {field}


def test_values_inside_the_bounds_are_accepted() -> None:
    soon = datetime.now(UTC) + timedelta(hours=1)  # within the default clock skew
    for changes in ({"amount": 1_000_000.0}, {"amount": 0.0}, {"event_time": _iso(soon)}, {"latitude": -90.0}):
        assert decode(_with_data(**changes), Transaction).transaction_id == "tx-test-0"


def test_the_configured_limits_are_honoured() -> None:
    strict = TransactionLimits(max_amount=100.0, max_future_s=0.0)
    assert decode(_with_data(amount=100), Transaction, limits=strict).amount == 100.0
    with pytest.raises(InvalidEvent, match=r"^amount: Input should be less than or equal to 100 \(got 150\)$"):
        decode(_with_data(amount=150), Transaction, limits=strict)
    in_a_minute = _iso(datetime.now(UTC) + timedelta(minutes=1))
    with pytest.raises(InvalidEvent, match="^event_time: Input should be at most 0 s in the future"):
        decode(_with_data(event_time=in_a_minute), Transaction, limits=strict)
    generous = TransactionLimits(max_amount=5e6)
    assert decode(_with_data(amount=2e6), Transaction, limits=generous).amount == 2e6
    with pytest.raises(InvalidEvent, match="^amount"):
        decode(_with_data(amount=2e6), Transaction)  # the default limit is 1,000,000


def test_a_huge_value_does_not_make_a_huge_reason() -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode(_with_data(merchant_id="x" * 100_000, amount="y" * 100_000), Transaction)
    assert len(caught.value.reason) <= 1000
    assert caught.value.reason.startswith("amount: Input should be a valid number (got 'yyy")
    assert "merchant_id: String should have at most 200 characters" in caught.value.reason


# --- whatever arrives, decode answers a Transaction or an InvalidEvent ----------------------------------

_DROP = object()
_texts = st.text(st.characters(codec="utf-8"), max_size=12)  # any unicode but lone surrogates, tested on their own
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40) | st.floats() | _texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_texts, inner, max_size=3),
    max_leaves=6,
)
_edge_values = st.sampled_from([
    1e39, -0.0, 1e308, -1e-320, 10**20, "NaN", "Infinity", "", "ü" * 201, "user_١", "2026-01-02T03:04:05",
    "1900-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "2026-02-30T00:00:00Z", 1767322800,
])
_attributes = {"specversion": "1.0", "id": "tx-1", "source": "s", "type": TRANSACTION_TYPE, "datacontenttype": "application/json"}


@st.composite
def _mutated(draw: st.DrawFn, base: Mapping[str, object], extra: str) -> dict[str, object]:
    """``base`` with a few entries dropped, replaced by odd JSON values, or added."""
    result = dict(base)
    for name in draw(st.lists(st.sampled_from([*base, extra]), max_size=3, unique=True)):
        new = draw(st.just(_DROP) | _json_values | _edge_values)
        if new is _DROP:
            result.pop(name, None)
        else:
            result[name] = new
    return result


@st.composite
def _kafka_messages(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, bytes]] | None]:
    """A Kafka message of either content mode, or neither, with its data and attributes damaged at random."""
    valid = make_transaction().model_dump(mode="json")
    data = draw(st.just(valid) | _mutated(valid, "surprise") | _json_values)
    attributes = draw(st.just(_attributes) | _mutated(_attributes, "subject"))
    mode = draw(st.sampled_from(["structured", "binary", "raw"]))
    if mode == "structured":
        value = json.dumps({**attributes, "data": data}).encode()
        headers = draw(st.sampled_from([None, [], [("content-type", b"application/cloudevents+json")]]))
    elif mode == "binary":
        value = json.dumps(data).encode()
        headers = [(f"ce_{name}", str(content).encode(errors="surrogatepass")) for name, content in attributes.items()]
        headers += draw(st.lists(st.tuples(st.sampled_from(["ce_type", "ce_id", "content-type"]), st.binary(max_size=8)), max_size=1))
    else:
        value = draw(st.binary(min_size=1, max_size=64) | _json_values.map(lambda anything: json.dumps(anything).encode()))
        names = st.sampled_from(["content-type", "ce_specversion", "ce_id", "ce_source", "ce_type", "other"])
        headers = draw(st.lists(st.tuples(names, st.binary(max_size=24)), max_size=5))
    return value, headers


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_kafka_messages())
def test_decode_returns_a_valid_transaction_or_raises_invalid_event_and_nothing_else(
    message: tuple[bytes, list[tuple[str, bytes]] | None],
) -> None:
    value, headers = message
    try:
        transaction = decode(value, Transaction, headers)
    except InvalidEvent as error:
        assert error.reason.strip()
        return
    assert isinstance(transaction, Transaction)
    assert math.isfinite(transaction.amount) and 0 <= transaction.amount <= DEFAULT_LIMITS.max_amount
