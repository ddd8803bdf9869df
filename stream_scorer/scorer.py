"""`BatchScorer`: one micro-batch from records to published scores and dead letters.

1. validate; records that are not valid transactions become dead letters with their reason;
2. read each user's state (the Faust table) and profile (Feast, cached);
3. compute the features with the shared feature code; rows that are not finite become dead letters;
4. the predictor scores the batch (one V2 call); rows it refuses (4xx) become dead letters,
   and the batch is scored again without them, so a refused row leaves no trace in any user's history;
5. publish the dead letters, then one Score per transaction, and wait until Kafka has them all;
6. hand the users' fresh features to the Feast pusher (off the scoring path);
7. write the users' new state to the table, and wait until its changelog has it.

The failure contract (README "Failure behaviour"): every record ends as a score or
a dead letter. Transient faults (Kafka, the predictor's transport or 5xx, Feast)
are retried in place by `Backpressure`, which pauses consumption while they last.
Any other exception is met by `settle`: it splits the batch until the record that
raises is alone, and dead-letters it with the exception. The agent acks a batch's
offsets only after it has its outcome.

Steps 1-4 (`prepare`) and 5-7 (`publish`) overlap across batches: while batch N
waits for Kafka to acknowledge its scores and its state, batch N+1 is prepared
(`prepare_overlapped`) on the users' states as N leaves them (`unsaved`, kept until
N's state is saved). Batches are still published, and their state saved, one after
the other in order (`publish_prepared`). If N's publish fails, the states it
prepared are forgotten (`epoch`), and N and every batch prepared on them are
settled again from the table.

The Kafka and Faust specifics (sending, the table) come in
as plain callables and a `UserStates`, so the unit tests can drive this class alone.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fraud.events import KafkaRecord, Score, Transaction, TransactionLimits, decode, score_messages
from fraud.features import FEATURE_NAMES, stream_features
from fraud.settings import Settings
from stream_scorer.backpressure import Backpressure
from stream_scorer.batch import (DeadLetter, Prediction, Record, feature_matrix, latest_per_user, non_finite_rows,
                                 score_columns, split_valid, user_id_of, users_of)
from stream_scorer.faults import RowsRefused
from stream_scorer.feast_io import CoalescingPusher, ProfileCache
from stream_scorer.metrics import ScorerMetrics, observe_many
from stream_scorer.predictor_client import PredictorClient

log = logging.getLogger(__name__)

POSITION_KEY = "input_position"  # in a user's table entry: (partition, offset) of their last scored transaction, a JSON array
SendMany = Callable[[Sequence[KafkaRecord]], Awaitable[None]]
Valid = list[tuple[Record, Transaction]]


class UserStates(Protocol):
    """Per-user state: the worker's is the changelog-backed Faust table (`stream_scorer.app.TableStates`)."""

    def get(self, user_id: str) -> dict | None: ...

    def get_many(self, user_ids: Sequence[str]) -> dict[str, dict | None]:
        """Each user's state (None for a user without one), read in one go."""

    async def save(self, states: dict[str, dict]) -> None:
        """Store these users' new states; durable when it returns."""


class DictStates(dict):
    """UserStates in a plain dict: for tests and tools that need no durability."""

    def get_many(self, user_ids: Sequence[str]) -> dict[str, dict | None]:
        return {user_id: self.get(user_id) for user_id in user_ids}

    async def save(self, states: dict[str, dict]) -> None:
        self.update(states)


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch did: the score messages it published and its dead letters."""

    messages: list[KafkaRecord]
    dead_letters: list[DeadLetter]

    @property
    def scores(self) -> list[Score]:
        """The published scores, decoded and validated (for tests and tools; the worker never needs them)."""
        return [decode(value, Score) for _, value, _ in self.messages]


@dataclass(frozen=True)
class ScoredRows:
    """Valid transactions with their features, the users' states after them, and the predictor's answer."""

    valid: Valid
    features: dict
    states: dict[str, dict]
    prediction: Prediction


@dataclass(frozen=True)
class Prepared:
    """A batch scored and ready to publish (steps 1-4): what `BatchScorer.publish` sends and saves."""

    dead: list[DeadLetter]
    messages: list[KafkaRecord]
    scored: ScoredRows | None
    states: dict[str, dict]  # the users' new states, not yet saved
    epoch: int = 0  # `BatchScorer.epoch` as it was prepared; an older one was prepared on states now forgotten


class BatchScorer:
    """Scores micro-batches; see the module docstring for the steps."""

    def __init__(
        self,
        settings: Settings,
        state: UserStates,
        profiles: ProfileCache,
        pusher: CoalescingPusher,
        predictor: PredictorClient,
        send_scores: SendMany,
        send_dead_letters: SendMany,
        metrics: ScorerMetrics,
    ) -> None:
        self.settings = settings
        self.state, self.profiles, self.pusher, self.predictor = state, profiles, pusher, predictor
        self.send_scores, self.send_dead_letters, self.metrics = send_scores, send_dead_letters, metrics
        self.backpressure = Backpressure(settings.predictor_retries, settings.predictor_backoff_max_s, metrics,
                                         on_wait=self._on_wait)
        self.feature_names: list[str] | None = None  # the served model's column order, asked once
        self.limits = TransactionLimits.from_settings(settings)
        # States of prepared batches whose publishing is not done yet: the next batch is prepared on them.
        self.unsaved: dict[str, dict] = {}
        self.epoch = 0  # moves on when `unsaved` is forgotten (a publish failed and its batch is settled again)
        self._preparing = asyncio.Lock()  # an overlapped prepare never runs beside a batch settled again

    async def settle(self, records: Sequence[Record]) -> None:
        """Give every record an outcome (score or dead letter); only cancellation leaves without one."""
        self.metrics.events_in.inc(len(records))
        self.metrics.batch_size.observe(len(records))
        await self._settle(records)

    async def _settle(self, records: Sequence[Record]) -> None:
        try:
            await self.process(records)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - an unexpected error must not stop scoring: isolate its record
            self.unsaved.clear()  # what the failed attempt prepared was not saved: the halves start from the table
            self.epoch += 1
            if len(records) > 1:
                log.warning("a batch of %d failed (%s: %s): isolating the record", len(records), type(error).__name__, error)
                middle = len(records) // 2
                await self._settle(records[:middle])
                await self._settle(records[middle:])
                return
            log.exception("record %s/%d/%d could not be scored", records[0].topic, records[0].partition, records[0].offset)
            self.metrics.unexpected_errors.inc()
            await self._dead_letter([DeadLetter(records[0], f"{type(error).__name__}: {error}")])

    async def process(self, records: Sequence[Record]) -> BatchOutcome:
        """Score ``records``: see the module docstring. Raises only what `settle` must isolate."""
        return await self.publish(await self.prepare(records))

    async def prepare(self, records: Sequence[Record]) -> Prepared:
        """Steps 1-4: validate, read state and profiles, compute features, ask the predictor; nothing is sent."""
        valid, dead = split_valid(records, self.limits)
        users = users_of(map(_TRANSACTION, valid))
        saved = self.state.get_many([user for user in users if user not in self.unsaved])
        saved.update((user, self.unsaved[user]) for user in users if user in self.unsaved)
        valid = self._without_redeliveries(valid, saved)
        scored, refused = await self._score(valid, saved)
        dead += refused
        if scored is None:
            return Prepared(dead, [], None, {}, self.epoch)
        messages = score_messages(score_columns(scored.valid, scored.features, scored.prediction, self.settings.model_name),
                                  self.settings.scorer_source)
        states = scored.states  # fresh dicts, the users' own: each gets the position of its last scored record
        last_record = dict(zip(map(user_id_of, map(_TRANSACTION, scored.valid)), map(_RECORD, scored.valid)))
        for user, record in last_record.items():
            states[user][POSITION_KEY] = (record.partition, record.offset)
        self.unsaved.update(states)
        return Prepared(dead, messages, scored, states, self.epoch)

    async def publish(self, prepared: Prepared) -> BatchOutcome:
        """Steps 5-7: dead letters, then scores, then (once Kafka has the scores) the users' new state."""
        await self._dead_letter(prepared.dead)
        if prepared.scored is None:
            return BatchOutcome([], prepared.dead)
        await self.backpressure.run(lambda: self.send_scores(prepared.messages))
        self._observe_published(prepared.scored.valid, len(prepared.messages))
        self.pusher.submit(latest_per_user([t for _, t in prepared.scored.valid], prepared.scored.features))
        # Only now: a batch that never got scored changes no state.
        await self.backpressure.run(lambda: self.state.save(prepared.states))
        for user, state in prepared.states.items():
            if self.unsaved.get(user) is state:  # not since replaced by a later batch's
                del self.unsaved[user]
        return BatchOutcome(prepared.messages, prepared.dead)

    async def prepare_overlapped(self, records: Sequence[Record]) -> Prepared | None:
        """`prepare`, while the previous batch may still be publishing; None if it raised (settle the batch instead)."""
        async with self._preparing:
            self.metrics.events_in.inc(len(records))
            self.metrics.batch_size.observe(len(records))
            try:
                return await self.prepare(records)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - `settle_again` isolates the record that raises
                log.warning("preparing a batch of %d failed (%s: %s); it is settled on its own", len(records),
                            type(error).__name__, error)
                return None

    async def publish_prepared(self, prepared: Prepared | None, records: Sequence[Record]) -> None:
        """Give every record of a batch `prepare_overlapped` gave an outcome: publish it, or settle it again.

        Call in batch order, each after the previous returned. A batch prepared on states that were
        since forgotten, or whose publish fails, is settled again from the saved states alone.
        """
        if prepared is not None and prepared.epoch == self.epoch:
            try:
                await self.publish(prepared)
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - settled again below, the record that raises isolated
                log.warning("publishing a batch of %d failed (%s: %s); it is settled again", len(records),
                            type(error).__name__, error)
        async with self._preparing:
            self.unsaved.clear()  # states of batches not published: the next batches are prepared again
            self.epoch += 1
            await self._settle(records)

    async def _score(self, valid: Valid, saved: dict) -> tuple[ScoredRows | None, list[DeadLetter]]:
        """Features and scores of ``valid``; rows that cannot be scored come back as dead letters instead."""
        dead: list[DeadLetter] = []
        while valid:
            transactions = [t for _, t in valid]
            reads_before = self.profiles.misses
            profiles = await self.backpressure.run(lambda: self.profiles.profiles(transactions))
            self.metrics.profile_reads.inc(self.profiles.misses - reads_before)
            computed = stream_features(transactions, saved, profiles)
            features = computed.features
            names = await self._feature_names()
            rejected = non_finite_rows(features, names)
            if not rejected:
                rows = feature_matrix(features, names)
                started = time.perf_counter()
                try:
                    prediction = await self.backpressure.run(lambda: self.predictor.predict(rows))
                except RowsRefused as refused:
                    rejected = {row: f"the predictor refused it: {reason}" for row, reason in refused.reasons.items()}
                else:
                    self.metrics.predictor_latency.observe(time.perf_counter() - started)
                    return ScoredRows(valid, features, computed.states, prediction), dead
            self.metrics.rows_refused.inc(len(rejected))
            dead += [DeadLetter(valid[row][0], reason) for row, reason in rejected.items()]
            valid = [pair for row, pair in enumerate(valid) if row not in rejected]  # and again without them
        return None, dead

    async def _feature_names(self) -> list[str]:
        if self.feature_names is None:
            self.feature_names = await self.predictor.feature_names() or list(FEATURE_NAMES)
        return self.feature_names

    async def _dead_letter(self, dead: list[DeadLetter]) -> None:
        if not dead:
            return
        for letter in dead:
            log.warning("dead letter %s/%d/%d: %s", letter.record.topic, letter.record.partition, letter.record.offset,
                        letter.reason)
        await self.backpressure.run(lambda: self.send_dead_letters([(d.record.key, d.record.value, d.headers) for d in dead]))
        self.metrics.dead_letters.inc(len(dead))

    def _observe_published(self, valid: Valid, count: int) -> None:
        entered = np.fromiter(map(_TIMESTAMP_S, map(_RECORD, valid)), np.float64, len(valid))
        observe_many(self.metrics.end_to_end, np.maximum(0.0, time.time() - entered))
        self.metrics.scores_out.inc(count)

    def _without_redeliveries(self, valid: Valid, saved: dict) -> Valid:
        """Drop records this worker (or its predecessor) scored already: Kafka redelivers what was not committed.

        The table is written after the scores are published, so an offset in it means the score is out.
        A record can also come twice within one batch: after a rebalance Faust seeks back to
        the committed offset while events fetched before it still wait in the batch buffer.
        Scored twice in a row, the second copy would count itself in its own history.
        """
        reached = {user: state[POSITION_KEY] for user, state in saved.items() if state and POSITION_KEY in state}
        if not _may_hold_redeliveries([record for record, _ in valid], reached.values()):
            return valid
        seen: set[tuple[int, int]] = set()
        fresh = []
        for record, transaction in valid:
            where = (record.partition, record.offset)
            position = reached.get(transaction.user_id)
            if (position is not None and record.partition == position[0] and record.offset <= position[1]) or where in seen:
                continue
            seen.add(where)
            fresh.append((record, transaction))
        if len(fresh) < len(valid):
            self.metrics.redelivered.inc(len(valid) - len(fresh))
            log.info("skipped %d redelivered records that were scored already", len(valid) - len(fresh))
        return fresh

    def _on_wait(self, dependency: str) -> None:
        if dependency == "predictor":
            self.feature_names = None  # the predictor may come back with another model


_RECORD, _TRANSACTION = operator.itemgetter(0), operator.itemgetter(1)
_TIMESTAMP_S = operator.attrgetter("timestamp_s")
_PARTITION, _OFFSET = operator.attrgetter("partition"), operator.attrgetter("offset")


def _may_hold_redeliveries(records: Sequence[Record], positions: Iterable[Sequence[int]]) -> bool:
    """Whether a record of ``records`` could be one scored already, or come twice: if not, none needs a look.

    ``positions``: the [partition, offset] the batch's users' states reached. Column-wise, for the
    batch as a whole: no record may come twice, and on each partition the batch must start past
    the furthest position reached there.
    """
    partitions = np.fromiter(map(_PARTITION, records), np.int64, len(records))
    offsets = np.fromiter(map(_OFFSET, records), np.int64, len(records))
    if len(np.unique(partitions << 40 | offsets)) < len(records):
        return True
    furthest: dict[int, int] = {}  # partition -> the furthest offset reached on it
    for partition, offset in positions:
        if offset > furthest.get(partition, -1):
            furthest[partition] = offset
    return any(offset >= offsets[partitions == partition].min(initial=offset + 1) for partition, offset in furthest.items())
