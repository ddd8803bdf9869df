"""Outcomes for the `fraud-labels` topic: from a file of real outcomes, or from ground truth with realistic delays.

A bank learns outcomes late. From ground truth (the synthetic stream's, or a
dataset's ``is_fraud``/``fraud`` column) every fraud is reported, by chargeback
(``FRAUD_LABEL_CHARGEBACK_SHARE``, 70%) or confirmed by the card holder, after a
log-normal delay (median ``FRAUD_LABEL_DELAY_MEDIAN_S``, two days, sigma
``FRAUD_LABEL_DELAY_SPREAD``, capped at ``FRAUD_LABEL_DELAY_MAX_S``: hours to
days); a share of the legitimate ones (``FRAUD_LABEL_CLEARED_SHARE``) is
cleared by a review after the same kind of delay; the rest never get a label.

Three ways out:
- ``fraud labels --dataset`` with an ``is_fraud`` column: outcomes as reported,
  published now (``source`` defaults to chargeback for a fraud and cleared
  otherwise, ``reported_at`` to now); rows that are not labels are rejected
  with their reason, as `fraud produce` rejects rows;
- ``fraud labels --dataset`` with a generated dataset (``fraud`` and
  ``event_time``): delayed labels drawn from its truth, all published now in
  the order they were reported;
- ``fraud produce --labels``: each transaction's label (if drawn) is published
  when due, ``delay x FRAUD_LABEL_TIME_SCALE`` after its transaction went out
  (`LabelScheduler`, a heap by due time on the transactions' producer).

``reported_at`` is always the transaction's ``event_time`` plus the full,
uncompressed delay. It is the time the outcome became known on the
transactions' own clock, and a replay compresses only the publication, never
that clock: `fraud produce` already sends a day of transactions in minutes
without rewriting their ``event_time``, and the time scale does the same for
labels. So a consumer that asks "which outcomes were known at time T" (a
point-in-time training cut, a label-delay chart) sees realistic delays whatever
the scale. The price: with a scale below 1 a label arrives before its
``reported_at`` (for the live synthetic stream, whose clock is now, that is in
the future), so nothing may read ``reported_at`` as an arrival time.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from kafka import KafkaProducer
from kafka.producer.future import FutureRecordMetadata
from pydantic import ValidationError

from fraud.errors import FraudError
from fraud.events import Label, Transaction, describe_validation_error
from fraud.settings import Settings
from producers.dataset import RejectedRow, as_utc, open_dataset, read_transactions
from producers.encoding import EncodedFollowUp, FollowUp
from producers.publisher import DeliveryReport, Progress, publish
from producers.sources import DatasetSource, SyntheticSource
from producers.synthetic import synthetic_outcomes

log = logging.getLogger(__name__)

_KEYS = ["transaction_id", "user_id"]
_TRUTH_COLUMNS = ("is_fraud", "fraud")  # an outcomes file's, a generated dataset's
_BLOCK = 4096  # transactions whose outcomes are drawn in one numpy call
_LABEL_STREAM = 0x1ABE1  # mixed into a seed so labels draw other numbers than the transactions of the same seed


@dataclass(frozen=True)
class LabelDelays:
    """How outcomes are drawn from ground truth."""

    median_s: float = 2 * 86_400.0
    spread: float = 0.8
    max_s: float = 60 * 86_400.0
    cleared_share: float = 0.2
    chargeback_share: float = 0.7

    @classmethod
    def from_settings(cls, settings: Settings) -> LabelDelays:
        """FRAUD_LABEL_DELAY_MEDIAN_S, _SPREAD, _MAX_S, FRAUD_LABEL_CLEARED_SHARE and _CHARGEBACK_SHARE."""
        return cls(settings.label_delay_median_s, settings.label_delay_spread, settings.label_delay_max_s,
                   settings.label_cleared_share, settings.label_chargeback_share)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` delays in seconds: log-normal around the median, capped."""
        return np.minimum(self.median_s * rng.lognormal(0.0, self.spread, n), self.max_s)


@dataclass(frozen=True)
class DrawnOutcome:
    """The label one transaction gets: which of them (its index), after how long, and from whom."""

    index: int
    delay_s: float
    source: str


def draw_outcomes(frauds: np.ndarray, delays: LabelDelays, rng: np.random.Generator) -> list[DrawnOutcome]:
    """Every fraud's outcome and a share of the legitimate ones' (cleared), each with a drawn delay."""
    frauds = np.asarray(frauds, dtype=bool)
    labelled = frauds | (rng.random(len(frauds)) < delays.cleared_share)
    delay_s = delays.draw(rng, len(frauds))
    chargeback = rng.random(len(frauds)) < delays.chargeback_share
    return [DrawnOutcome(int(i), float(delay_s[i]),
                         "cleared" if not frauds[i] else "chargeback" if chargeback[i] else "confirmed")
            for i in np.flatnonzero(labelled)]


def labels_from_truth(transaction_ids: list[str], user_ids: list[str], event_times: list[datetime], frauds: np.ndarray,
                      delays: LabelDelays, rng: np.random.Generator) -> list[Label]:
    """The drawn labels of these transactions, in the order they were reported."""
    labels = [_label(transaction_ids[o.index], user_ids[o.index], event_times[o.index], o) for o in
              draw_outcomes(frauds, delays, rng)]
    return sorted(labels, key=lambda label: (label.reported_at, label.transaction_id))


def _label(transaction_id: str, user_id: str, event_time: datetime, outcome: DrawnOutcome) -> Label:
    return Label(transaction_id=transaction_id, user_id=user_id, is_fraud=outcome.source != "cleared",
                 source=outcome.source, reported_at=event_time + timedelta(seconds=outcome.delay_s))


# --- `fraud labels --dataset`: outcomes published now ----------------------------------------------
def read_labels(path: Path, delays: LabelDelays, seed: int = 0) -> Iterator[Label | RejectedRow]:
    """The labels of ``path``: reported outcomes (``is_fraud``) as they are, or ground truth (``fraud``) delayed."""
    names = check_labels_file(path)
    if "is_fraud" in names:
        yield from _reported(path, names)
        return
    table = open_dataset(path, _KEYS).to_table(columns=[*_KEYS, "event_time", "fraud"])
    table = as_utc(table.combine_chunks().to_batches()[0]) if table.num_rows else table
    yield from labels_from_truth(table.column("transaction_id").to_pylist(), table.column("user_id").to_pylist(),
                                 table.column("event_time").to_pylist(), table.column("fraud").to_numpy(zero_copy_only=False),
                                 delays, np.random.default_rng(seed))


def check_labels_file(path: Path) -> list[str]:
    """The columns of an outcomes file, or a one-line error saying what it lacks."""
    names = open_dataset(path, _KEYS).schema.names
    if "is_fraud" not in names and not {"fraud", "event_time"} <= set(names):
        raise FraudError(f"dataset {path} has neither an is_fraud column (outcomes) nor fraud and event_time "
                         f"(a generated dataset's ground truth)")
    return names


def _reported(path: Path, names: list[str]) -> Iterator[Label | RejectedRow]:
    columns = [*_KEYS, "is_fraud", *(name for name in ("source", "reported_at") if name in names)]
    now = datetime.now(UTC)
    row_number = 0
    for batch in open_dataset(path, _KEYS).to_batches(columns=columns, batch_size=8192):
        if "reported_at" in columns:
            batch = as_utc(batch, "reported_at")
        for row in batch.to_pylist():
            if not row.get("source") and isinstance(row["is_fraud"], bool):  # a CSV's empty cell is "" here
                row["source"] = "chargeback" if row["is_fraud"] else "cleared"
            if row.get("reported_at") is None:
                row["reported_at"] = now
            try:
                yield Label.model_validate(row)
            except ValidationError as error:
                yield RejectedRow(row_number, describe_validation_error(error))
            row_number += 1


@dataclass(frozen=True)
class LabelSource:
    """A labels file as a source for `producers.publisher.publish` (opened in the encoder process)."""

    path: Path
    delays: LabelDelays
    seed: int = 0

    def open(self) -> Iterator[Label | RejectedRow]:
        return read_labels(self.path, self.delays, self.seed)


def publish_outcomes(path: Path, settings: Settings, seed: int = 0, progress: Progress | None = None) -> DeliveryReport:
    """Publish the labels of ``path`` to ``settings.topic_labels`` now; bad rows are counted as rejected."""
    check_labels_file(path)  # here, so a missing file or column is one line rather than the encoder's failure
    return publish(LabelSource(path, LabelDelays.from_settings(settings), seed),
                   settings.model_copy(update={"event_source": settings.label_source}), topic=settings.topic_labels,
                   rate=0, progress=progress)


# --- `fraud produce --labels`: each transaction's label when it is due -------------------------------
Truth = Iterable[tuple[Transaction | RejectedRow, bool | None]]


@dataclass(frozen=True)
class LabelledSource:
    """A transaction source whose transactions are followed by their labels (drawn from its ground truth)."""

    source: SyntheticSource | DatasetSource
    delays: LabelDelays
    event_source: str
    seed: int | None = None

    def open(self) -> Iterator[Transaction | RejectedRow | FollowUp]:
        rng = np.random.default_rng(None if self.seed is None else [self.seed, _LABEL_STREAM])
        return with_labels(ground_truth(self.source), self.delays, rng, self.event_source)


def labelled(source: SyntheticSource | DatasetSource, settings: Settings, seed: int | None = None) -> LabelledSource:
    """``source`` with labels; a one-line error if it has no ground truth."""
    if isinstance(source, DatasetSource):
        _truth_column(source.path)
    elif not isinstance(source, SyntheticSource):
        raise FraudError(f"{type(source).__name__} has no ground truth to label")
    return LabelledSource(source, LabelDelays.from_settings(settings), settings.label_source, seed)


def ground_truth(source: SyntheticSource | DatasetSource) -> Truth:
    """Each item of ``source`` with whether it is a fraud (None: unknown, no label)."""
    if isinstance(source, SyntheticSource):
        return synthetic_outcomes(source.count, users=source.users, seed=source.seed)
    column = _truth_column(source.path)
    truth = (_as_truth(value) for batch in open_dataset(source.path, [column]).to_batches(columns=[column], batch_size=8192)
             for value in batch.column(0).to_pylist())
    return zip(read_transactions(source.path, source.limit), truth)  # same file, same row order


def _truth_column(path: Path) -> str:
    names = open_dataset(path, []).schema.names
    found = next((name for name in _TRUTH_COLUMNS if name in names), None)
    if found is None:
        raise FraudError(f"dataset {path} has no is_fraud (or fraud) column: no ground truth to label")
    return found


def _as_truth(value: object) -> bool | None:
    return bool(value) if isinstance(value, bool) or value in (0, 1) else None


def with_labels(items: Truth, delays: LabelDelays, rng: np.random.Generator, event_source: str,
                ) -> Iterator[Transaction | RejectedRow | FollowUp]:
    """Each item, and right after a transaction its label (if it draws one) as a follow-up due after the delay."""
    items = iter(items)
    while block := list(itertools.islice(items, _BLOCK)):
        known = [i for i, (item, fraud) in enumerate(block) if isinstance(item, Transaction) and fraud is not None]
        outcomes = {known[o.index]: o for o in draw_outcomes(np.array([block[i][1] for i in known], dtype=bool), delays, rng)}
        for i, (item, _) in enumerate(block):
            yield item
            if i in outcomes:
                label = _label(item.transaction_id, item.user_id, item.event_time, outcomes[i])
                yield FollowUp(label, outcomes[i].delay_s, event_source, kind=label.source)


@dataclass
class LabelReport:
    """What became of the labels of `fraud produce --labels`."""

    delivery: DeliveryReport = field(default_factory=DeliveryReport)
    scheduled: int = 0
    sent_by_source: Counter[str] = field(default_factory=Counter)
    not_published: int = 0
    max_late_s: float = 0.0  # the latest a label went out after it was due

    def summary(self, topic: str) -> str:
        """One line of counts."""
        sources = ", ".join(f"{name} {n:,}" for name, n in sorted(self.sent_by_source.items())) or "none"
        return (f"labels: delivered {self.delivery.delivered:,} ({sources})  failed {self.delivery.failed:,}  "
                f"not published {self.not_published:,}  of {self.scheduled:,} drawn, to {topic}; "
                f"at most {self.max_late_s:.2f}s after due")


class LabelScheduler:
    """Publishes each label when it is due: a heap by due time, fed with the labels of transactions as they go out.

    A label is due ``delay_s x time_scale`` after `add` (just after its
    transaction was handed to the producer). `drain` waits for the rest, at
    most ``wait_s`` (None: until all are out); what is still waiting then is
    counted as not published.
    """

    def __init__(self, topic: str, time_scale: float = 1.0, wait_s: float | None = None,
                 progress: Progress | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.topic, self.time_scale, self.wait_s, self.progress = topic, time_scale, wait_s, progress
        self._clock, self._sleep = clock, sleep
        self._due: list[tuple[float, int, EncodedFollowUp]] = []
        self._order = itertools.count()  # ties keep insertion order, and EncodedFollowUps are never compared
        self._pending: deque[list[FutureRecordMetadata]] = deque()
        self.report = LabelReport()

    @classmethod
    def from_settings(cls, settings: Settings, wait_s: float | None = None, progress: Progress | None = None) -> LabelScheduler:
        """To settings.topic_labels, compressed by FRAUD_LABEL_TIME_SCALE."""
        return cls(settings.topic_labels, settings.label_time_scale, wait_s, progress)

    @property
    def waiting(self) -> int:
        """Labels not sent yet."""
        return len(self._due)

    def add(self, follow_ups: list[EncodedFollowUp]) -> None:
        """Schedule labels whose transactions just went out."""
        now = self._clock()
        for follow_up in follow_ups:
            heapq.heappush(self._due, (now + follow_up.delay_s * self.time_scale, next(self._order), follow_up))
        self.report.scheduled += len(follow_ups)

    def send_due(self, producer: KafkaProducer) -> None:
        """Hand every label that is due to the producer (cheap when none is: called after each transaction)."""
        if not self._due or self._due[0][0] > (now := self._clock()):
            return
        sent = []
        while self._due and self._due[0][0] <= now:
            due, _, follow_up = heapq.heappop(self._due)
            key, value, headers = follow_up.record
            sent.append(producer.send(self.topic, key=key, value=value, headers=headers))
            self.report.sent_by_source[follow_up.kind] += 1
            self.report.max_late_s = max(self.report.max_late_s, now - due)
        self._pending.append(sent)
        self.report.delivery.settle(self._pending)
        if self.progress is not None:
            self.progress.advance(len(sent))

    def drain(self, producer: KafkaProducer) -> None:
        """Send the rest as each falls due, until none is left or ``wait_s`` has passed."""
        deadline = None if self.wait_s is None else self._clock() + self.wait_s
        if self._due:
            log.info("%d labels still to come, the last in %.1fs (time scale %g)", len(self._due),
                     max(due for due, _, _ in self._due) - self._clock(), self.time_scale)
        while self._due:
            self.send_due(producer)
            if not self._due or (deadline is not None and self._due[0][0] > deadline):
                break
            self._sleep(max(0.0, self._due[0][0] - self._clock()))
        self.report.not_published = len(self._due)

    def settle(self, final_wait_s: float) -> None:
        """Count every sent label as delivered or failed, waiting at most ``final_wait_s``."""
        self.report.delivery.settle(self._pending, final_wait_s=final_wait_s)


def publish_with_labels(source: LabelledSource, settings: Settings, topic: str, wait_s: float | None,
                        progress: Progress | None = None,
                        label_progress: Progress | None = None) -> tuple[DeliveryReport, LabelReport]:
    """`fraud produce --labels`: publish the transactions and, each when due, their labels (see `labelled`)."""
    scheduler = LabelScheduler.from_settings(settings, wait_s, label_progress)
    report = publish(source, settings, topic=topic, progress=progress, follow_ups=scheduler)
    return report, scheduler.report
