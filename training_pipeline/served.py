"""Training rows from what was served: score events' `features` joined with their labels.

A score event carries the feature values the model saw (`Score.features`); a
label, arriving hours or days later, says whether that transaction was fraud.
Joined on transaction_id they are training rows with no training/serving skew:
exactly the stream worker's features, on the newest traffic, including any new
fraud pattern. `training_data` adds them to the Feast history, split by time:
the older part to train, the newest to valid and test, so the gate judges the
candidate and production on the new pattern too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pandas as pd
from kafka.errors import KafkaError

from fraud.errors import FraudError
from fraud.events import InvalidEvent, Label, Score, decode
from fraud.features import FEATURE_NAMES
from fraud.settings import Settings

log = logging.getLogger(__name__)
# Chronological shares of the served rows: the oldest go to train, the newest to test.
SERVED_SPLITS = (("train", 0.6), ("valid", 0.2), ("test", 0.2))


def join_served(scores: Iterable[Score], labels: Iterable[Label], since: datetime | None = None) -> pd.DataFrame:
    """One row per labelled, scored transaction (scored at or after ``since``): FEATURE_NAMES, `fraud`, `event_time`.

    Redelivered scores of a transaction are identical, so one is kept; of several
    labels the latest reported wins (a chargeback can overturn a 'cleared'). A
    score whose features are not exactly the worker's current ones (an older
    model's) cannot become a row of this model's inputs and is left out.
    """
    outcome: dict[str, tuple[datetime, bool]] = {}
    for label in labels:
        if label.transaction_id not in outcome or label.reported_at >= outcome[label.transaction_id][0]:
            outcome[label.transaction_id] = (label.reported_at, label.is_fraud)
    rows: dict[str, dict] = {}
    for score in scores:
        if score.transaction_id not in outcome or set(score.features) != set(FEATURE_NAMES):
            continue
        if since is not None and score.scored_at < since:
            continue
        rows[score.transaction_id] = {**{name: score.features[name] for name in FEATURE_NAMES},
                                      "fraud": int(outcome[score.transaction_id][1]), "event_time": score.event_time}
    columns = [*FEATURE_NAMES, "fraud", "event_time"]
    frame = pd.DataFrame(list(rows.values()), columns=columns)
    return frame.astype({name: "float64" for name in FEATURE_NAMES} | {"fraud": "int64"})


def split_by_time(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """`SERVED_SPLITS` of ``rows`` in event-time order (train oldest, test newest), without the `event_time` column."""
    ordered = rows.sort_values("event_time", kind="stable").drop(columns="event_time").reset_index(drop=True)
    splits, start = {}, 0
    for position, (split, share) in enumerate(SERVED_SPLITS):
        stop = len(ordered) if position == len(SERVED_SPLITS) - 1 else start + round(share * len(ordered))
        splits[split] = ordered.iloc[start:stop].reset_index(drop=True)
        start = stop
    return splits


def traffic(scores: Iterable[Score], since: datetime | None = None) -> pd.DataFrame:
    """The features of every transaction scored at or after ``since``, labelled or not: a sample of the traffic.

    With the worker's current features only, one row per transaction. A retrained
    model's drift reference is this, since it is the traffic the model will serve.
    """
    rows: dict[str, list[float]] = {}
    for score in scores:
        if set(score.features) == set(FEATURE_NAMES) and (since is None or score.scored_at >= since):
            rows[score.transaction_id] = [score.features[name] for name in FEATURE_NAMES]
    return pd.DataFrame(list(rows.values()), columns=list(FEATURE_NAMES), dtype="float64")


def read_served(settings: Settings, window_days: float, now: datetime | None = None,
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The score and label events published in the last ``window_days`` (`fraud.topics.read_between`, no group):
    `join_served`'s labelled rows, and the `traffic` of the window."""
    from fraud.topics import end_offsets, offsets_since, read_between

    since = (now or datetime.now(UTC)) - timedelta(days=window_days)
    events: dict[type, list] = {Score: [], Label: []}
    for topic, kind in ((settings.topic_scores, Score), (settings.topic_labels, Label)):
        try:
            start = offsets_since(settings, topic, int(since.timestamp() * 1000))
            records = list(read_between(settings, topic, start, end_offsets(settings, topic)))
        except KafkaError as error:
            raise FraudError(f"cannot read {topic} for the labelled served rows from {settings.kafka_bootstrap}: "
                             f"{error} (or set FRAUD_RETRAIN_LABELLED_WINDOW_DAYS=0)") from error
        unreadable = 0
        for record in records:
            try:
                events[kind].append(decode(record.value, kind, record.headers))
            except InvalidEvent:
                unreadable += 1  # the topic's own consumers dead-letter these; here they are simply not rows
        log.info("%s: %d events since %s (%d unreadable)", topic, len(events[kind]), since.isoformat(), unreadable)
    rows = join_served(events[Score], events[Label], since)
    log.info("served rows: %d labelled transactions, %d fraud", len(rows), int(rows["fraud"].sum()))
    return rows, traffic(events[Score], since)
