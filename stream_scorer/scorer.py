"""`BatchScorer`: one micro-batch from records to published scores, in the order the issue asks for.

1. validate; bad records go to the dead-letter topic with their reason;
2. read each user's state (the Faust table) and profile (Feast, cached);
3. compute the features with the shared feature code;
4. hand the users' fresh features to the Feast pusher (one push per batch at most, off the scoring path);
5. the predictor scores the batch (one V2 call, retried until it answers);
6. publish one Score per transaction and wait until Kafka has them all;
7. write the users' new state to the table.
Offsets are committed by Faust after `process` returns, so a worker that dies
mid-batch has its batch delivered again: nothing is lost (at-least-once).

The Kafka and Faust specifics (sending, the table, pausing partitions) come in
as plain callables and a `UserStates`, so the unit tests can drive this class alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from fraud.events import KafkaRecord, Score, encode
from fraud.features import FEATURE_NAMES, UserActivity, stream_features
from fraud.settings import Settings
from stream_scorer.batch import DeadLetter, Record, build_scores, feature_matrix, latest_per_user, split_valid, users_of
from stream_scorer.feast_io import CoalescingPusher, ProfileCache
from stream_scorer.metrics import ScorerMetrics
from stream_scorer.predictor_client import PredictorClient

log = logging.getLogger(__name__)

POSITION_KEY = "input_position"  # in a user's table entry: [partition, offset] of their last scored transaction
SendMany = Callable[[Sequence[KafkaRecord]], Awaitable[None]]


class UserStates(Protocol):
    """Per-user state: the worker's is the changelog-backed Faust table (`stream_scorer.app.TableStates`)."""

    def get(self, user_id: str) -> dict | None: ...

    async def save(self, states: dict[str, dict]) -> None:
        """Store these users' new states; durable (at the latest) before the batch's offsets are committed."""


class DictStates(dict):
    """UserStates in a plain dict: for tests and tools that need no durability."""

    async def save(self, states: dict[str, dict]) -> None:
        self.update(states)


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch did."""

    scores: list[Score]
    dead_letters: list[DeadLetter]


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
        pause: Callable[[], None] = lambda: None,
        resume: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.state, self.profiles, self.pusher, self.predictor = state, profiles, pusher, predictor
        self.send_scores, self.send_dead_letters, self.metrics = send_scores, send_dead_letters, metrics
        self._pause, self._resume = pause, resume
        self.feature_names: list[str] | None = None  # the served model's column order, asked once

    async def process(self, records: Sequence[Record]) -> BatchOutcome:
        metrics = self.metrics
        metrics.events_in.inc(len(records))
        metrics.batch_size.observe(len(records))
        valid, dead = split_valid(records)
        if dead:
            for letter in dead:
                log.warning("dead letter %s/%d/%d: %s", letter.record.topic, letter.record.partition,
                            letter.record.offset, letter.reason)
            await self.send_dead_letters([(r.record.key, r.record.value, r.headers) for r in dead])
            metrics.dead_letters.inc(len(dead))

        saved = {user: self.state.get(user) for user in users_of(t for _, t in valid)}
        valid = self._without_redeliveries(valid, saved)
        if not valid:
            return BatchOutcome([], dead)
        transactions = [transaction for _, transaction in valid]
        reads_before = self.profiles.misses
        profiles = await self.profiles.profiles(transactions)
        metrics.profile_reads.inc(self.profiles.misses - reads_before)
        activity = {user: UserActivity.from_dict(state) for user, state in saved.items() if state}
        features = stream_features(transactions, activity, profiles)  # updates `activity`, a copy of the table's state

        self.pusher.submit(latest_per_user(transactions, features))
        if self.feature_names is None:
            self.feature_names = await self.predictor.feature_names() or list(FEATURE_NAMES)
        rows = feature_matrix(features, self.feature_names)
        started = time.perf_counter()
        prediction = await self.predictor.predict(
            rows, on_retry=lambda error: metrics.predictor_failures.inc(), on_pause=self._on_pause, on_resume=self._on_resume)
        metrics.predictor_latency.observe(time.perf_counter() - started)

        scores = build_scores(valid, features, prediction, self.settings.model_name)
        await self.send_scores([encode(score, self.settings.scorer_source) for score in scores])
        published = time.time()
        for record, _ in valid:
            metrics.end_to_end.observe(max(0.0, published - record.timestamp_s))
        metrics.scores_out.inc(len(scores))
        last_positions = {transaction.user_id: [record.partition, record.offset] for record, transaction in valid}
        # Only now: a batch that never got scored changes no state.
        await self.state.save({user: activity[user].to_dict() | {POSITION_KEY: position}
                               for user, position in last_positions.items()})
        return BatchOutcome(scores, dead)

    def _without_redeliveries(self, valid: list, saved: dict) -> list:
        """Drop records this worker (or its predecessor) scored already: Kafka redelivers what was not committed.

        The table is written after the scores are published, so an offset in it means the score is out.
        """
        def scored_already(record: Record, user_id: str) -> bool:
            partition, offset = (saved.get(user_id) or {}).get(POSITION_KEY, (-1, -1))
            return record.partition == partition and record.offset <= offset

        fresh = [(record, t) for record, t in valid if not scored_already(record, t.user_id)]
        if len(fresh) < len(valid):
            self.metrics.redelivered.inc(len(valid) - len(fresh))
            log.info("skipped %d redelivered records that were scored already", len(valid) - len(fresh))
        return fresh

    def _on_pause(self) -> None:
        self.metrics.paused.set(1)
        self.feature_names = None  # the predictor may come back with another model
        self._pause()

    def _on_resume(self) -> None:
        self.metrics.paused.set(0)
        self._resume()
