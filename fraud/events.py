"""The product's events: one schema module for producers, scorer, predictor and tests.

Events travel as CloudEvents 1.0 in structured JSON mode (the whole event,
attributes and ``data``, is the Kafka message value; the key is the user id),
built and parsed with the ``cloudevents`` SDK. ``data`` is one of the pydantic
models below.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, TypeVar

import orjson
from cloudevents import exceptions as ce_errors
from cloudevents.http import CloudEvent
from cloudevents.kafka import KafkaMessage, from_structured, to_structured
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

TRANSACTION_TYPE = "fraud.transaction.v1"
SCORE_TYPE = "fraud.score.v1"




def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UserId = Annotated[str, Field(pattern=r"^user_\d+$", description="user_0, user_1, ...")]
UtcTime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
StrictText = Annotated[str, Field(min_length=1, max_length=200, strict=True)]
Decision = Literal["legit", "fraud"]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Transaction(_Event):
    """A card transaction as the payment system publishes it."""

    transaction_id: StrictText
    user_id: UserId
    event_time: UtcTime
    amount: float = Field(ge=0.0, allow_inf_nan=False, strict=True)
    merchant_id: StrictText
    merchant_category: StrictText
    latitude: float = Field(ge=-90.0, le=90.0, allow_inf_nan=False, strict=True)
    longitude: float = Field(ge=-180.0, le=180.0, allow_inf_nan=False, strict=True)
    used_chip: StrictBool
    used_pin_number: StrictBool
    online_order: StrictBool


class Score(_Event):
    """The fraud score of one transaction, with the features the model saw (the audit trail)."""

    transaction_id: StrictText
    user_id: UserId
    event_time: UtcTime
    score: Probability
    decision: Decision
    threshold: Probability
    model_name: StrictText
    model_version: StrictText
    scored_at: UtcTime
    latency_ms: float = Field(ge=0.0, allow_inf_nan=False)
    features: dict[str, float]

    @model_validator(mode="after")
    def _decision_matches_score(self) -> Score:
        expected = "fraud" if self.score >= self.threshold else "legit"
        if self.decision != expected:
            raise ValueError(f"decision {self.decision!r} contradicts score {self.score} at threshold {self.threshold}")
        return self


class InvalidEvent(ValueError):
    """A Kafka message that is not a valid event; ``reason`` says why, for the dead-letter topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_EVENT_TYPES: dict[type[_Event], str] = {Transaction: TRANSACTION_TYPE, Score: SCORE_TYPE}
EventT = TypeVar("EventT", Transaction, Score)


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each wrong field and why, e.g. ``amount: Input should be >= 0 (got -5)``."""
    parts = []
    for detail in error.errors(include_url=False):
        field = ".".join(str(item) for item in detail["loc"]) or "event"
        got = f" (got {detail['input']!r})" if detail["type"] != "missing" and not isinstance(detail["input"], dict) else ""
        parts.append(f"{field}: {detail['msg']}{got}")
    return "; ".join(parts)


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def to_cloudevent(payload: Transaction | Score, source: str) -> CloudEvent:
    """Wrap an event payload in a CloudEvent whose id, time and partition key come from the payload."""
    attributes = {
        "specversion": "1.0",
        "type": _EVENT_TYPES[type(payload)],
        "source": source,
        "id": payload.transaction_id if isinstance(payload, Transaction) else f"score-{payload.transaction_id}",
        "time": _rfc3339(payload.event_time if isinstance(payload, Transaction) else payload.scored_at),
        "subject": payload.user_id,
        "datacontenttype": "application/json",
        "partitionkey": payload.user_id,
    }
    return CloudEvent(attributes, payload.model_dump(mode="json"))


def to_kafka_message(payload: Transaction | Score, source: str) -> KafkaMessage:
    """Encode a payload as a structured-mode CloudEvent Kafka message (key = user id), with orjson."""
    return to_structured(to_cloudevent(payload, source), envelope_marshaller=orjson.dumps)


KafkaRecord = tuple[bytes, bytes, list[tuple[str, bytes]]]
# The Kafka protocol binding says a structured-mode message's content-type is the event
# format's media type. The 1.x SDK copies the *data*'s content type there instead, which
# reads as binary mode, so we set the header ourselves. One shared list also pickles once per chunk.
STRUCTURED_HEADERS: list[tuple[str, bytes]] = [("content-type", b"application/cloudevents+json")]


def encode(payload: Transaction | Score, source: str) -> KafkaRecord:
    """(key, value, headers) of a payload, ready for any Kafka client's send()."""
    message = to_kafka_message(payload, source)
    key = message.key.encode() if isinstance(message.key, str) else message.key
    return key, message.value, STRUCTURED_HEADERS


def decode(value: bytes | None, expected: type[EventT]) -> EventT:
    """Parse a structured-mode CloudEvent Kafka message into ``expected``, or raise InvalidEvent."""
    if not value:
        raise InvalidEvent("empty message")
    try:
        event = from_structured(KafkaMessage(headers={}, key=None, value=value), envelope_unmarshaller=orjson.loads)
    except ce_errors.DataUnmarshallerError as error:
        raise InvalidEvent(f"not a JSON CloudEvent: {error}") from error
    except ce_errors.GenericException as error:
        raise InvalidEvent(f"invalid CloudEvent attributes: {error}") from error
    except (AttributeError, TypeError) as error:  # e.g. a JSON array or number instead of an object
        raise InvalidEvent(f"not a JSON CloudEvent object: {error}") from error
    event_type = event["type"]
    if event_type != _EVENT_TYPES[expected]:
        raise InvalidEvent(f"CloudEvent type is {event_type!r}, expected {_EVENT_TYPES[expected]!r}")
    data = event.get_data()
    if not isinstance(data, dict):
        raise InvalidEvent("CloudEvent data is not a JSON object")
    try:
        return expected.model_validate(data)
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error)) from error
