"""Transactions as they should not be, drawn by Hypothesis from the schema, for the chaos run's poison scenario.

Each record is a `fraud.events.Transaction` with some fields kept valid and
others replaced by a wrong type, an extreme, unicode, a huge value, or nothing at
all, sent as a CloudEvent in either content mode of the Kafka binding: structured
(the whole event in the value) or binary (attributes in ``ce_*`` headers, built
with the cloudevents SDK's `to_binary`), sometimes with a broken envelope, a
wrong key or a value that is not JSON. Some come out valid: the worker must
score those and dead-letter the rest, without ever pausing.

Hypothesis is a development dependency (the `dev` group, installed by `uv sync`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudevents.http import CloudEvent
from cloudevents.kafka import to_binary

from benchmarks.chaos_stack import Outgoing
from fraud.datagen import MERCHANT_CATEGORIES
from fraud.events import STRUCTURED_HEADERS, TRANSACTION_TYPE

_MISSING = object()


def _strategies(users: int) -> tuple[dict[str, Any], Any, Any]:
    """Per field a valid-value strategy; any-JSON values; extremes of every kind."""
    from hypothesis import strategies as st

    now = datetime.now(UTC)
    times = st.datetimes(min_value=datetime(2000, 1, 2), max_value=now.replace(tzinfo=None),
                         timezones=st.just(UTC)).map(lambda moment: moment.isoformat())
    valid = {
        "user_id": st.one_of(st.integers(0, users - 1).map(lambda n: f"user_{n}"),
                             st.from_regex(r"user_\d{1,25}", fullmatch=True)),  # \d: any Unicode digit
        "event_time": times,
        "amount": st.floats(0.0, 1_000_000.0),
        "merchant_id": st.text(min_size=1, max_size=200),
        "merchant_category": st.one_of(st.sampled_from(MERCHANT_CATEGORIES), st.text(min_size=1, max_size=30)),
        "latitude": st.floats(-90.0, 90.0),
        "longitude": st.floats(-180.0, 180.0),
        "used_chip": st.booleans(),
        "used_pin_number": st.booleans(),
        "online_order": st.booleans(),
    }
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
    json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                               max_leaves=6)
    extremes = st.one_of(
        st.sampled_from([1e308, -1e308, 1e39, -1e39, 5e-324, -0.0, 2**63, -(2**63) - 1, 10**40, float("nan"),
                         float("inf"), -1.0, 1_000_000.01, "", " ", "\x00", "NaN", "1e999", "true", "null",
                         "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00", "2026-01-02T03:04:05",
                         (now + timedelta(days=2)).isoformat(), "1999-12-31T23:59:59Z", 91.0, -181.0]),
        st.tuples(st.characters(), st.integers(1_000, 50_000)).map(lambda pair: pair[0] * pair[1]),  # huge text
        st.integers(min_value=10**20, max_value=10**400),  # huge numbers
    )
    return valid, json_values, extremes


def _records(users: int):
    """A strategy factory: ``record(number)`` draws one poison-or-not record whose ids embed ``number`` (unique)."""
    from hypothesis import strategies as st

    valid, json_values, extremes = _strategies(users)

    @st.composite
    def record(draw, number: int) -> Outgoing:
        fields = ["transaction_id", *valid]
        broken = draw(st.sets(st.sampled_from(fields), max_size=3))  # most records break one or two fields
        data: dict[str, Any] = {"transaction_id": f"tx-fuzz-{number}"}
        if "transaction_id" in broken:
            data["transaction_id"] = draw(st.one_of(
                st.text(min_size=1, max_size=20).map(lambda text: f"tx-fuzz-{number}-{text}"),  # still valid: unicode
                st.just(f"tx-fuzz-{number}-" + "x" * 200), st.just(""), st.just(_MISSING),
                json_values.filter(lambda value: not isinstance(value, str))))
        for name, strategy in valid.items():
            data[name] = draw(st.one_of(json_values, extremes, st.just(_MISSING)) if name in broken else strategy)
        if draw(st.integers(0, 20)) == 7:
            data[draw(st.text(min_size=1, max_size=10))] = draw(json_values)  # an unknown field
        data = {name: value for name, value in data.items() if value is not _MISSING}
        tracking_id = data["transaction_id"] if isinstance(data.get("transaction_id"), str) and data["transaction_id"] \
            else f"fz-{number}"
        user = data.get("user_id") if isinstance(data.get("user_id"), str) else "user_0"
        key = draw(st.sampled_from([user.encode()] * 8 + [b"user_1", None]))
        if draw(st.booleans()):
            value, headers = _structured(data, user, draw(st.integers(0, 30)))
        else:
            value, headers = _binary(data, user, draw(st.integers(0, 30)))
        if draw(st.integers(0, 30)) == 7:
            value = draw(st.binary(max_size=200))  # not JSON at all, or empty
        return Outgoing(str(tracking_id), key, value, headers)

    return record


def _attributes(user: str) -> dict[str, str]:
    return {"specversion": "1.0", "type": TRANSACTION_TYPE, "source": "chaos.poison", "id": "poison",
            "datacontenttype": "application/json", "partitionkey": user}


def _dumps(value: Any) -> bytes:
    # The standard library, not orjson: it writes NaN, Infinity and integers of any size, as a sloppy sender would.
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _structured(data: dict, user: str, envelope_fault: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    envelope: dict[str, Any] = {**_attributes(user), "data": data}
    if envelope_fault == 11:
        del envelope["specversion"]
    elif envelope_fault == 12:
        envelope["type"] = "fraud.score.v1"
    elif envelope_fault == 13:
        envelope["specversion"] = "2.0"
    elif envelope_fault == 14:
        envelope["data"] = [data]
    return _dumps(envelope), list(STRUCTURED_HEADERS)


def _binary(data: dict, user: str, envelope_fault: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    message = to_binary(CloudEvent(_attributes(user), data), data_marshaller=_dumps)
    headers = dict(message.headers)
    if envelope_fault == 11:
        del headers["ce_specversion"]
    elif envelope_fault == 12:
        headers["ce_type"] = b"fraud.score.v1"
    elif envelope_fault == 13:
        headers["ce_source"] = b"\xff\xfe not utf-8"
    elif envelope_fault == 14:
        del headers["ce_id"]
    return message.value, list(headers.items())


def poison_records(count: int, users: int = 2000, seed: int = 0) -> list[Outgoing]:
    """``count`` records drawn by Hypothesis (reproducible for a ``seed``), ids unique."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fixed_seed
    from hypothesis import strategies as st

    record = _records(users)
    drawn: list[Outgoing] = []
    while len(drawn) < count:  # Hypothesis may stop a round early; each round continues the numbering

        @fixed_seed(seed + len(drawn))
        @settings(max_examples=count - len(drawn), database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(st.data())
        def draw_all(data) -> None:
            drawn.append(data.draw(record(len(drawn))))

        draw_all()
    return drawn[:count]
