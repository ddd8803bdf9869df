"""`fraud demo`: the whole story on the local stack, from generated data to scores on `fraud-scores`.

1. `fraud stack up`: Kafka, the predictor, the stream worker;
2. generate ``days + 1`` days of transactions: the first ``days`` are history
   (`data/raw`, what the pipeline trains on), the last day is replayed live;
3. run the training pipeline, which registers the model and reloads the predictor;
4. seed the worker's user table with the history, so its features continue from it;
5. replay the last day through Kafka and watch the scores come back;
6. summarise: decisions (beside the ground truth), top scores, throughput, latency.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from kafka import KafkaConsumer, TopicPartition

from fraud.datagen import GenerationSpec, generate
from fraud.errors import FraudError
from fraud.events import InvalidEvent, Score, decode
from fraud.settings import Settings
from fraud.topics import end_offsets
from producers.publisher import DeliveryReport, Progress, publish
from producers.sources import DatasetSource


@dataclass(frozen=True)
class DemoData:
    """The demo's two files: history for training and seeding, one later day to replay."""

    history: Path
    replay: Path
    replay_count: int


def replay_path(settings: Settings) -> Path:
    return settings.data_dir / "demo" / "replay.parquet"


def generate_demo_data(settings: Settings, users: int, days: int, seed: int = 0, spec: GenerationSpec | None = None,
                       ) -> DemoData:
    """Generate ``days + 1`` days (or ``spec``); write the first ``days`` to the raw dir and the rest to replay.parquet."""
    scratch = settings.data_dir / "demo" / "generated"
    spec = spec or GenerationSpec(users=users, days=days + 1, seed=seed)
    files = generate(spec, scratch)
    table = pq.read_table(files.transactions_path)
    cut = datetime.combine(spec.start, datetime.min.time(), UTC) + timedelta(days=days)
    earlier = pc.less(table["event_time"], pa.scalar(cut, table.schema.field("event_time").type))
    settings.raw_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.filter(earlier), settings.raw_dir / "transactions.parquet")
    pq.write_table(pq.read_table(files.users_path), settings.raw_dir / "users.parquet")
    replay = table.filter(pc.invert(earlier)).sort_by([("event_time", "ascending"), ("transaction_id", "ascending")])
    pq.write_table(replay, replay_path(settings))
    return DemoData(settings.raw_dir / "transactions.parquet", replay_path(settings), replay.num_rows)


def reseed_worker(settings: Settings) -> int:
    """Stop the worker, seed its table with the raw history, start it and wait until it consumes; how many users."""
    from fraud.local_stack.worker import LocalWorker
    from stream_scorer.seed import seed_state

    worker = LocalWorker(settings)
    worker.stop()
    seeded = seed_state(settings, settings.raw_dir / "transactions.parquet")
    worker.start()
    worker.wait_ready()
    return seeded


@dataclass(frozen=True)
class ReplayResult:
    """The replayed day's scores and how fast they came."""

    published: DeliveryReport
    scores: list[Score]
    labels: dict[str, bool]  # transaction_id -> ground truth
    seconds: float  # first publish to last score read

    @property
    def events_per_second(self) -> float:
        return len(self.scores) / self.seconds if self.seconds else 0.0

    def latency_ms(self, quantile: float) -> float:
        return float(np.quantile([s.latency_ms for s in self.scores], quantile)) if self.scores else 0.0

    def decisions(self) -> dict[tuple[str, bool], int]:
        """(decision, actually fraud) -> count."""
        counts: dict[tuple[str, bool], int] = {}
        for score in self.scores:
            key = (score.decision, self.labels.get(score.transaction_id, False))
            counts[key] = counts.get(key, 0) + 1
        return counts

    def top(self, n: int = 5) -> list[Score]:
        return sorted(self.scores, key=lambda s: s.score, reverse=True)[:n]


def replay_and_watch(settings: Settings, path: Path, rate: float, on_published: Progress,
                     on_scored: Callable[[int], None], idle_timeout_s: float = 90.0) -> ReplayResult:
    """Publish ``path`` to the transactions topic (in a thread) and read its scores back as they arrive."""
    table = pq.read_table(path, columns=["transaction_id", "fraud"])
    labels = dict(zip(table["transaction_id"].to_pylist(), table["fraud"].to_pylist(), strict=True))
    topic = settings.topic_scores
    start = end_offsets(settings, topic)
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in start]
    consumer.assign(partitions)
    for tp in partitions:
        consumer.seek(tp, start[tp.partition])

    report: list[DeliveryReport] = []
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            report.append(publish(DatasetSource(path), settings.model_copy(update={"produce_rate": rate}),
                                  topic=settings.topic_transactions, progress=on_published))
        except BaseException as error:  # reported by the main thread
            failure.append(error)

    started = time.perf_counter()
    producer = threading.Thread(target=produce, name="demo-replay", daemon=True)
    producer.start()
    scores: dict[str, Score] = {}
    last_progress, finished = time.monotonic(), started
    try:
        while len(scores) < len(labels):
            if failure:
                raise FraudError(f"replay failed: {failure[0]}")
            batches = consumer.poll(timeout_ms=200)
            fresh = 0
            for records in batches.values():
                for record in records:
                    try:
                        score = decode(record.value, Score)
                    except InvalidEvent:
                        continue
                    if score.transaction_id in labels and score.transaction_id not in scores:
                        scores[score.transaction_id] = score
                        fresh += 1
            if fresh:
                on_scored(fresh)
                last_progress, finished = time.monotonic(), time.perf_counter()
            elif time.monotonic() - last_progress > idle_timeout_s:
                raise FraudError(f"no new scores for {idle_timeout_s:.0f}s ({len(scores):,} of {len(labels):,} scored); "
                                 f"see `fraud stack status` and {settings.data_dir / 'run' / 'worker.log'}")
    finally:
        consumer.close()
    producer.join()
    if failure:
        raise FraudError(f"replay failed: {failure[0]}")
    return ReplayResult(report[0], list(scores.values()), labels, finished - started)
