"""The processes and instruments of a chaos run (`fraud bench chaos`, tests/reliability).

`ChaosStack`: the product's embedded Kafka broker, the real predictor
(`python -m predictor`) serving a tiny real ONNX model from the embedded
registry, and a Feast SQLite online store with the profiles of the known users,
all in one scratch data dir on free ports, so that a developer's stack is left
alone. Each scenario opens a `Run` on it: its own topics and consumer group,
real `python -m stream_scorer` workers (`LocalWorker`, each on its own metrics
port), a `Feed` publishing its records, a `MetricsSampler`, and `TopicTail`s
reading the scores and dead letters that come out.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from fraud.features import FEATURE_NAMES
from fraud.local_stack.kafka import LocalKafka, create_topics, delete_topics
from fraud.local_stack.predictor import LocalPredictor
from fraud.local_stack.process import free_port
from fraud.local_stack.worker import LocalWorker, scrape
from fraud.settings import Settings
from fraud.topics import TopicTail
from producers.publisher import make_producer
from stream_scorer.batch import DLQ_REASON_HEADER

log = logging.getLogger(__name__)

# Every record a chaos run publishes carries its id here; a dead letter keeps its record's headers,
# so even a record without a readable transaction_id is accounted for.
TRACKING_HEADER = "fraud-chaos-id"


@dataclass(frozen=True)
class Outgoing:
    """One record to publish: its accounting id (the transaction_id when it has one) and its Kafka parts."""

    tracking_id: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


def tiny_model(path: Path, seed: int) -> Path:
    """A real ONNX graph with the product's interface: features [N, 14] FP32 -> sigmoid(x·w + b) [N, 1], threshold 0.5.

    Scoring costs next to nothing, so a run measures the worker, not the model.
    """
    import onnx
    from onnx import TensorProto, helper

    from fraud.onnx_model import write_metadata

    width = len(FEATURE_NAMES)
    rng = np.random.default_rng(seed)
    weights = helper.make_tensor("w", TensorProto.FLOAT, [width, 1], rng.normal(0, 0.1, width).astype(np.float32))
    bias = helper.make_tensor("b", TensorProto.FLOAT, [1], [float(rng.normal())])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["z0"]), helper.make_node("Add", ["z0", "b"], ["z"]),
         helper.make_node("Sigmoid", ["z"], ["score"])],
        "tiny", [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])], initializer=[weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    write_metadata(path, {"feature_names": list(FEATURE_NAMES), "threshold": 0.5})
    return path


def register_tiny_model(settings: Settings, seed: int = 1) -> str:
    """Register and promote a `tiny_model` in the embedded registry under the data dir; return its version."""
    from fraud.registry import EmbeddedRegistry
    from fraud.storage import LocalArtifactStore

    path = tiny_model(settings.data_dir / f"tiny-{seed}.onnx", seed)
    uri = LocalArtifactStore(settings.data_dir / "artifacts").put(path, f"tiny/{seed}/model.onnx")
    registry = EmbeddedRegistry(settings.data_dir / "registry" / "registry.json")
    version = registry.register(settings.model_name, uri, "onnx", "17", {"feature_names": list(FEATURE_NAMES)})
    registry.promote(settings.model_name, version.version)
    return version.version


def write_profiles(settings: Settings, users: int, seed: int = 0) -> None:
    """Apply the Feast repo and write the batch profiles of user_0 .. user_<users-1> to the online store."""
    from feature_repo.definitions import feast_objects
    from fraud.feature_store import open_store

    store = open_store(settings)
    store.apply(feast_objects(settings))
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    store.write_to_online_store("user_profile", pd.DataFrame({
        "user_id": [f"user_{n}" for n in range(users)], "home_latitude": rng.uniform(35, 55, users),
        "home_longitude": rng.uniform(-10, 30, users), "median_purchase_amount": rng.lognormal(np.log(40), 0.6, users),
        "event_timestamp": now}))


class ChaosStack:
    """Broker, predictor and Feast store shared by the scenarios of one chaos run, in ``root``.

    ``known_users``: user_0 .. user_<known_users-1> have a profile in the store.
    ``worker_env`` goes to every worker, e.g. Faust's BROKER_SESSION_TIMEOUT: after a
    SIGKILL the group waits that long for the dead member before its partitions move,
    60 s by Faust's default; the tests shorten it to stay within their time.
    ``patience_s``: how long a run may go without any new outcome before it is declared stuck.
    """

    def __init__(self, base: Settings, root: Path, known_users: int = 2000, worker_env: dict[str, str] | None = None,
                 patience_s: float = 180.0) -> None:
        self.settings = base.model_copy(update={
            "data_dir": root.resolve(), "kafka_bootstrap": f"127.0.0.1:{free_port()}", "kafka_controller_port": free_port(),
            "predictor_port": free_port()})
        self.known_users, self.worker_env, self.patience_s = known_users, worker_env or {}, patience_s
        self.broker, self.predictor = LocalKafka(self.settings), LocalPredictor(self.settings)

    def __enter__(self) -> ChaosStack:
        # The broker's start is mostly waiting for a JVM: the rest gets ready meanwhile.
        broker_error: list[BaseException] = []
        broker = threading.Thread(target=lambda: _capture(self.broker.start, broker_error), name="chaos-broker")
        broker.start()
        try:
            register_tiny_model(self.settings)
            write_profiles(self.settings, self.known_users)
            self.predictor.start()
            self.predictor.wait_ready()
            broker.join()
            if broker_error:
                raise broker_error[0]
        except BaseException:
            broker.join()
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop what the stack started (workers are the runs' to stop)."""
        self.predictor.stop()
        self.broker.stop()

    @property
    def online_store(self) -> Path:
        """The Feast SQLite online store file (feature_repo/feature_store.yaml)."""
        return self.settings.data_dir / "feast" / "online_store.db"


def _capture(action: Callable[[], object], errors: list[BaseException]) -> None:
    try:
        action()
    except BaseException as error:  # noqa: BLE001 - handed to the thread that waits for it
        errors.append(error)


@contextmanager
def unreadable(db_path: Path) -> Iterator[None]:
    """Make a SQLite file unreadable while the block runs (`database disk image is malformed`), then restore it.

    The file is overwritten in place rather than moved away: the worker and the Feast
    pusher keep their SQLite connection open, and an open connection keeps reading a
    moved file through its descriptor, as if nothing happened; only new connections
    would see the change. Garbage of the same length written into the same file is
    seen by every connection, open or new. The write-ahead log is checkpointed first,
    so the copy restored afterwards is the whole database (the WAL is left alone).
    """
    with sqlite3.connect(db_path, timeout=10) as connection:
        for _ in range(50):  # busy while a reader is mid-transaction; it lasts milliseconds
            if connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0:
                break
            time.sleep(0.1)
    connection.close()
    original = db_path.read_bytes()
    with db_path.open("r+b") as target:
        target.write(os.urandom(len(original)))
    try:
        yield
    finally:
        with db_path.open("r+b") as target:
            target.write(original)
            target.truncate()


class Feed:
    """Publishes records on a thread with the product's producer: the first ``head`` at once, the rest at ``rate``/s.

    The head is a backlog waiting for the worker while it starts; the rest waits for
    `go` (the worker is ready) and then flows at ``rate`` (0: at once), so that the
    faults meet a worker with work coming in. The producer is the one `fraud produce`
    uses (idempotent, acks=all, retried until its delivery timeout), so a broker
    outage shorter than that only delays sends. ``delivered`` holds the ids Kafka
    acknowledged: what the accounting calls published.
    """

    def __init__(self, settings: Settings, topic: str, records: Sequence[Outgoing], rate: float, head: int = 0) -> None:
        self.settings, self.topic, self.records, self.rate, self.head = settings, topic, records, rate, head
        self._go = threading.Event()
        self.delivered: set[str] = set()
        self.positions: dict[str, tuple[int, int]] = {}  # tracking id -> (partition, offset), to place a loss
        self.failed: dict[str, str] = {}
        self.offered = 0
        self.error: str | None = None  # why the feed stopped early, if it did
        self._thread = threading.Thread(target=self._publish, name="chaos-feed", daemon=True)

    def start(self) -> Feed:
        self._thread.start()
        return self

    def go(self) -> None:
        """Let the records after the head flow."""
        self._go.set()

    def wait(self, timeout_s: float) -> bool:
        """Wait until every record was acknowledged or failed; True if the feed finished."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _delivered(self, tracking_id: str, metadata) -> None:  # metadata: kafka-python's RecordMetadata
        self.positions[tracking_id] = (metadata.partition, metadata.offset)
        self.delivered.add(tracking_id)

    def _publish(self) -> None:
        try:
            producer = make_producer(self.settings)
        except Exception as error:  # noqa: BLE001 - reported by the run, not lost in a thread
            self.error = f"{type(error).__name__}: {error}"
            return
        started = time.perf_counter()
        try:
            for index, record in enumerate(self.records):
                if index == self.head:
                    self._go.wait()
                    started = time.perf_counter()
                headers = [*record.headers, (TRACKING_HEADER, record.tracking_id.encode())]
                try:
                    future = producer.send(self.topic, key=record.key, value=record.value, headers=headers)
                except Exception as error:  # noqa: BLE001 - e.g. a send blocked past max_block_ms: not published
                    self.failed[record.tracking_id] = f"{type(error).__name__}: {error}"
                else:
                    future.add_callback(lambda metadata, tid=record.tracking_id: self._delivered(tid, metadata))
                    future.add_errback(lambda error, tid=record.tracking_id: self.failed.__setitem__(tid, str(error)))
                self.offered += 1
                if self.rate and index >= self.head:
                    ahead = started + (index + 1 - self.head) / self.rate - time.perf_counter()
                    if ahead > 0.001:
                        time.sleep(ahead)
            producer.flush()
        except Exception as error:  # noqa: BLE001
            self.error = f"{type(error).__name__}: {error}"
        finally:
            producer.close()


class MetricsSampler:
    """Scrapes every live worker of a run every ``interval_s``: what was seen of pauses, and each worker's counters."""

    def __init__(self, workers: Callable[[], list[LocalWorker]], interval_s: float = 0.25) -> None:
        self._workers, self.interval_s = workers, interval_s
        self.samples = 0
        self.paused_samples = 0
        self.waited_for: set[str] = set()
        self.last: dict[str, dict[str, float]] = {}  # worker name -> its latest metrics
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-sampler", daemon=True)

    def start(self) -> MetricsSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def total(self, name: str) -> float:
        """A counter summed over every worker of the run (a killed worker's: its last value seen)."""
        return sum(metrics.get(name, 0.0) for metrics in self.last.values())

    def merged(self) -> dict[str, float]:
        """Every sample summed over the workers of the run, as `total` does for one."""
        names = {name for metrics in self.last.values() for name in metrics}
        return {name: self.total(name) for name in names}

    def _run(self) -> None:
        prefix = "fraud_scorer_waiting_for:"
        while not self._stop.wait(self.interval_s):
            for worker in self._workers():
                metrics = scrape(worker.settings, timeout_s=1.0)
                if metrics is None:
                    continue
                self.samples += 1
                self.last[worker.files.name] = metrics
                if metrics.get("fraud_scorer_consumption_paused"):
                    self.paused_samples += 1
                    self.waited_for |= {k[len(prefix):] for k, v in metrics.items() if k.startswith(prefix) and v}


@dataclass
class Outcomes:
    """What came out of a run: score events' data, and dead letters as (tracking id, reason)."""

    scores: list[dict] = field(default_factory=list)
    dead_letters: list[tuple[str | None, str]] = field(default_factory=list)
    done_ids: set[str] = field(default_factory=set)
    unreadable_scores: int = 0  # score events that are not a CloudEvent with a transaction_id in its data

    def add_score(self, value: bytes | None) -> None:
        try:
            data = orjson.loads(value or b"")["data"]
            transaction_id = data["transaction_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.unreadable_scores += 1
            return
        self.scores.append(data)
        self.done_ids.add(transaction_id)

    def add_dead_letter(self, headers: Sequence[tuple[str, bytes]]) -> None:
        by_name = dict(headers)
        tracking = by_name.get(TRACKING_HEADER)
        tracking_id = tracking.decode(errors="replace") if tracking is not None else None
        self.dead_letters.append((tracking_id, by_name.get(DLQ_REASON_HEADER, b"").decode(errors="replace")))
        if tracking_id is not None:
            self.done_ids.add(tracking_id)


class Run:
    """One scenario on a `ChaosStack`: its topics and consumer group, its workers, what came out of it.

    Also a small supervisor: a worker that dies without being killed here is noted
    (`violations`) and replaced, as a Deployment would, so the accounting still says
    whether anything was lost.
    """

    def __init__(self, stack: ChaosStack, name: str, seed: int = 0, worker_env: dict[str, str] | None = None) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.stack, self.name, self.random = stack, name, random.Random(seed)
        self.worker_env = stack.worker_env | (worker_env or {})
        self.settings = stack.settings.model_copy(update={
            "topic_transactions": f"chaos-{name}-tx-{suffix}", "topic_scores": f"chaos-{name}-scores-{suffix}",
            "topic_dlq": f"chaos-{name}-dlq-{suffix}", "topic_labels": f"chaos-{name}-labels-{suffix}",
            "scorer_app_id": f"chaos-{name}-{suffix}"})
        create_topics(self.settings)
        self.workers: list[LocalWorker] = []  # every incarnation, in start order
        self.live: list[LocalWorker] = []
        self.violations: list[str] = []
        self.notes: list[str] = []
        self.outcomes = Outcomes()
        self._scores = TopicTail(self.settings, self.settings.topic_scores)
        self._dead = TopicTail(self.settings, self.settings.topic_dlq)
        self.sampler = MetricsSampler(lambda: list(self.live))

    # -- workers ----------------------------------------------------------------------------------
    def start_worker(self, wait_ready: bool = True) -> LocalWorker:
        """Start one more `python -m stream_scorer` in the run's consumer group, on its own metrics port."""
        own = self.settings.model_copy(update={"scorer_metrics_port": free_port()})
        worker = LocalWorker(own, name=f"{self.name}-worker-{len(self.workers) + 1}", env=self.worker_env)
        self.workers.append(worker)
        worker.start()
        self.live.append(worker)
        if wait_ready:
            worker.wait_ready()
        return worker

    def kill_worker(self, worker: LocalWorker) -> None:
        """SIGKILL ``worker`` (and its helper processes)."""
        self.live.remove(worker)
        worker.kill()

    def stop_worker(self, worker: LocalWorker) -> None:
        """SIGTERM ``worker``: it leaves the group gracefully."""
        self.live.remove(worker)
        worker.stop()

    def supervise(self) -> None:
        """Replace any worker that died by itself (noting it: that is not what the contract describes)."""
        for worker in list(self.live):
            if worker.files.read_pid() is None:
                self.violations.append(f"{worker.files.name} exited by itself; log: {worker.files.log_file}")
                self.live.remove(worker)
                self.start_worker(wait_ready=False)

    # -- waiting ----------------------------------------------------------------------------------
    def sleep(self, seconds: float) -> None:
        """Wait, supervising the workers meanwhile."""
        self.wait_until(lambda: False, seconds, fail=False)

    def wait_until(self, check: Callable[[], bool], timeout_s: float, what: str = "", fail: bool = True,
                   interval_s: float = 0.25) -> bool:
        """Poll ``check`` (supervising the workers); False, or AssertionError when ``fail``, after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return True
            self.supervise()
            time.sleep(min(interval_s, max(0.0, deadline - time.monotonic())))
        if fail:
            raise AssertionError(f"{self.name}: no {what} after {timeout_s:.0f}s")
        return False

    def scores_out(self, worker: LocalWorker) -> float:
        """Scores ``worker`` has published (0 while it does not answer)."""
        return (scrape(worker.settings) or {}).get("fraud_scorer_scores_out_total", 0.0)

    def all_ready(self) -> bool:
        """Every running worker has recovered its table and opened its Feast store (`fraud_scorer_ready`)."""
        return all((scrape(worker.settings) or {}).get("fraud_scorer_ready") == 1 for worker in self.live)

    def scored_by_live_workers(self) -> float:
        """Scores published by the workers running now."""
        return sum(self.scores_out(worker) for worker in self.live)

    # -- outcomes ---------------------------------------------------------------------------------
    def collect(self) -> None:
        """Read the scores and dead letters that arrived since the last call."""
        for record in self._scores.read_new():
            self.outcomes.add_score(record.value)
        for record in self._dead.read_new():
            self.outcomes.add_dead_letter(record.headers)

    def wait_for_outcomes(self, expected: set[str], patience_s: float) -> bool:
        """Collect until every id of ``expected`` has an outcome (True), or nothing new came for ``patience_s`` (False)."""
        seen, last_news = -1, time.monotonic()
        while True:
            self.collect()
            if expected <= self.outcomes.done_ids:
                return True
            count = len(self.outcomes.scores) + len(self.outcomes.dead_letters)
            if count != seen:
                seen, last_news = count, time.monotonic()
            elif time.monotonic() - last_news > patience_s:
                return False
            self.sleep(1.0)

    def log_tails(self, lines: int = 30) -> dict[str, str]:
        """The end of each worker's log, the last started first, without Faust's start and stop chatter."""
        def telling(line: str) -> bool:
            return bool(line.strip()) and "] [INFO] [^" not in line and not line.startswith(("+", "|"))

        return {worker.files.name: "\n".join([line for line in worker.files.log_tail(400).splitlines() if telling(line)][-lines:])
                for worker in reversed(self.workers)}

    def close(self, delete: bool = True) -> None:
        """Stop the live workers gracefully, read what they still published; delete the topics."""
        for worker in list(self.live):
            self.stop_worker(worker)
        self.collect()
        if delete:
            from stream_scorer.seed import changelog_topic

            delete_topics(self.settings, [*self.settings.topic_partitions, changelog_topic(self.settings)])
