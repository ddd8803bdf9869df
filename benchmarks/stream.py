"""`fraud bench stream`: end-to-end events/s and latency of the stream worker, beside two baselines, in one run.

Everything is local: the stack's Kafka broker, a predictor serving the training
architecture (MLP exported with tf2onnx) and a Feast store holding every user's
profile and latest features, all in a scratch data dir. Contenders, each a real
worker process on fresh topics and a fresh consumer group:

- ``ours (batch N)``: `python -m stream_scorer` with micro-batches of at most N;
- ``raw aiokafka``: aiokafka's `getmany` batches, orjson decode and encode, acks=all (the limit);
- ``quixstreams``: the peer framework's pass-through, JSON in and out;
- ``faust passthrough``: a Faust agent that only decodes and re-produces (Faust's ceiling);
- ``per-event``: the seed's design, one Feast read and one single-row predictor call per event.

Figures per contender:
- sustained events/s: a backlog of events is waiting when the worker starts; the
  first ``warm_up`` outputs are not timed (start-up, and the worker's first Feast
  read of each user's profile), the rate is measured over the rest;
- latency at steady offered rates (default 1,000 and 5,000 events/s): from the
  transaction's Kafka timestamp (when it was produced) to its output being
  consumed here, p50 and p99. A contender that cannot sustain a rate is not
  asked to (its queue would only grow);
- for the worker, where its time per event goes while timed: py-spy samples which of
  its threads holds the GIL (``--gil``: the worker is bound by one core's worth of
  Python), and each sample is put to the innermost frame that names a part (see
  `BUDGET_PARTS`): µs per event = samples of the part / sampling rate / events output.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import signal
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer, TopicPartition
from rich.console import Console
from rich.table import Table

from benchmarks.chaos import Accounting, account
from benchmarks.measure import tree_cpu_s
from fraud.events import encode
from fraud.features import FEATURE_NAMES
from fraud.local_stack.kafka import LocalKafka, create_topics, delete_topics
from fraud.local_stack.process import free_port
from fraud.local_stack.worker import ready as worker_ready
from fraud.settings import Settings, settings_env
from fraud.topics import aiokafka_config
from producers.publisher import make_producer
from producers.synthetic import synthetic_transactions
from stream_scorer.app import queue_partition_batches
from stream_scorer.seed import changelog_topic


# A sample goes to the part named by its innermost frame that matches one of these (a path piece of the
# file as py-spy shows it, relative to sys.path, and function names, or None for any); a sample matching
# none (the event loop itself, gc, logging, metrics) is "other".
BUDGET_PARTS: tuple[tuple[str, str, frozenset[str] | None], ...] = (
    ("kafka client", "stream_scorer/app.py", frozenset({"queue_partition_batches", "send_partition_batches",
                                                        "partition_for", "_hash_index"})),
    ("decode", "stream_scorer/batch.py", frozenset({"split_valid"})),
    ("decode", "fraud/events.py", frozenset({"decode", "_from_structured", "_from_binary", "_payload", "_header_map",
                                             "decode_transactions", "_plain_transaction", "_within_limits",
                                             "_checked_transaction"})),
    ("encode", "stream_scorer/batch.py", frozenset({"build_scores", "score_columns"})),
    ("encode", "fraud/events.py", frozenset({"encode", "to_kafka_message", "to_cloudevent", "score_messages"})),
    ("features", "fraud/features.py", None),
    ("features", "stream_scorer/feast_io.py", None),
    ("features", "stream_scorer/batch.py", frozenset({"non_finite_rows", "feature_matrix", "latest_per_user"})),
    ("predictor", "stream_scorer/predictor_client.py", None),
    ("state", "stream_scorer/app.py", frozenset({"get", "get_many", "save", "keep", "_db"})),
    ("state", "stream_scorer/scorer.py", frozenset({"_without_redeliveries"})),
    ("state", "stream_scorer/recent_states.py", None),
    ("state", "rocksdict/", None),
    ("kafka client", "aiokafka/", None),
    ("kafka client", "kafka/", None),
    ("event loop", "mode/worker.py", None),  # reached only when nothing inside the loop's own frames is known
    ("faust", "faust/", None),
    ("faust", "mode/", None),
    ("faust", "stream_scorer/app.py", frozenset({"score_transactions", "score", "update_lag"})),
    ("faust", "stream_scorer/bulk_input.py", None),  # the input's hand-over from Faust's consumer to the agent
    ("faust", "stream_scorer/offsets.py", None),
    ("scorer (rest)", "stream_scorer/scorer.py", None),
    ("scorer (rest)", "stream_scorer/batch.py", None),
    ("scorer (rest)", "stream_scorer/backpressure.py", None),
)
BUDGET_COLUMNS = ("kafka client", "faust", "event loop", "decode", "state", "features", "predictor", "encode",
                  "scorer (rest)", "other")
PROFILE_RATE = 250  # samples/s


@dataclass(frozen=True)
class Figures:
    """One contender's results: events/s, (p50, p99) ms per offered rate it could take, and its time budget."""

    events_per_s: float
    latency_ms: dict[float, tuple[float, float]]
    budget_us: dict[str, float] | None = None  # µs of GIL time per event, by BUDGET_COLUMNS
    timed_events: int = 0  # outputs of the backlog the events/s were timed over


def _part(stack: str) -> str:
    """The budget part of one py-spy stack (``func (file:line);...``, outermost first)."""
    for frame in reversed(stack.split(";")):
        function, _, where = frame.partition(" (")
        name = function.strip().rsplit(".", 1)[-1]  # py-spy names a method Class.method, a closure f.<locals>.g
        for part, path, functions in BUDGET_PARTS:
            if (where.startswith(path) or f"/{path}" in where) and (functions is None or name in functions):
                return part
    return "other"


def budget_from_profile(raw: str, events: int) -> dict[str, float]:
    """µs per event by part, from py-spy's raw (collapsed) output of a run that output ``events``."""
    samples = dict.fromkeys(BUDGET_COLUMNS, 0)
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            samples[_part(stack)] += int(count)
    return {part: count / PROFILE_RATE / events * 1e6 for part, count in samples.items()}


def _start_profile(pid: int, path: Path) -> subprocess.Popen | None:
    """py-spy sampling the GIL holder of ``pid`` until interrupted; None where py-spy is not installed."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        return None
    return subprocess.Popen([str(py_spy), "record", "--pid", str(pid), "--gil", "--rate", str(PROFILE_RATE), "--format",
                             "raw", "--output", str(path), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def _stop_profile(profiler: subprocess.Popen | None, path: Path, events: int) -> dict[str, float] | None:
    if profiler is None:
        return None
    profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    profiler.wait(timeout=60)
    return budget_from_profile(path.read_text(), events) if path.exists() and events > 0 else None


def _prepare_store(settings: Settings, users: int) -> None:
    """Every user's profile and latest features in the Feast online store (what the per-event design reads)."""
    from feature_repo.definitions import PUSH_SOURCE, feast_objects
    from fraud.feature_store import open_store

    store = open_store(settings)
    store.apply(feast_objects(settings))
    now = datetime.now(UTC)
    rng = np.random.default_rng(0)
    ids = [f"user_{n}" for n in range(users)]
    store.write_to_online_store("user_profile", pd.DataFrame({
        "user_id": ids, "home_latitude": rng.uniform(35, 60, users), "home_longitude": rng.uniform(-10, 30, users),
        "median_purchase_amount": rng.lognormal(3, 0.5, users), "event_timestamp": now}))
    activity = pd.DataFrame(rng.lognormal(0, 1, (users, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    activity.insert(0, "transaction_id", [f"tx-seed-{n}" for n in range(users)])
    activity.insert(0, "user_id", ids)
    activity["event_timestamp"] = now
    store.push(PUSH_SOURCE, activity)


def _origin_s(record) -> float:
    """When the transaction behind an output record was produced: score events say it, pass-through keeps it."""
    for name, value in record.headers:
        if name == "origin-timestamp":
            return float(value)
    data = orjson.loads(record.value)["data"]
    scored_at = datetime.fromisoformat(data["scored_at"].replace("Z", "+00:00")).timestamp()
    return scored_at - data["latency_ms"] / 1000.0


class OutputWatcher:
    """Reads a contender's output topic from the start in a thread; records arrival and origin times."""

    def __init__(self, settings: Settings, topic: str, keep_scores: bool = False) -> None:
        self.arrivals: list[tuple[float, float]] = []  # (arrived_s, origin_s)
        self.scores: list[dict] = []  # each score event's data, with keep_scores (for an accounting)
        self._keep_scores = keep_scores
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False,
                                       fetch_max_wait_ms=10)
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions_scores)]
        self._consumer.assign(partitions)
        self._consumer.seek_to_beginning(*partitions)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for records in self._consumer.poll(timeout_ms=50).values():
                arrived = time.time()
                self.arrivals.extend((arrived, _origin_s(r)) for r in records)
                if self._keep_scores:
                    self.scores.extend(orjson.loads(r.value)["data"] for r in records)

    def wait_for(self, count: int, timeout_s: float, alive) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.arrivals) < count and time.monotonic() < deadline and alive():
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


def _send(settings: Settings, topic: str, records: list, rate: float = 0.0) -> None:
    """Publish pre-encoded records, as fast as possible or paced at ``rate`` per second."""
    if not rate:
        asyncio.run(_send_in_bulk(settings, topic, records))
        return
    producer = make_producer(settings)
    started = time.perf_counter()
    for index, (key, value, headers) in enumerate(records):
        if rate:
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        producer.send(topic, key=key, value=value, headers=headers)
    producer.flush()
    producer.close()


async def _send_in_bulk(settings: Settings, topic: str, records: list, chunk: int = 20_000) -> None:
    """Publish as fast as this machine's Kafka client goes (partition batches of up to 1 MB, acks=all).

    kafka-python's per-message `send` is slower than the worker now: a worker timed while its
    input is still being published would be timed against the producer.
    """
    producer = AIOKafkaProducer(**aiokafka_config(settings), acks="all", linger_ms=0,
                                max_batch_size=settings.scorer_producer_batch_bytes)
    await producer.start()
    try:
        for start in range(0, len(records), chunk):
            sent = await queue_partition_batches(producer, topic, records[start:start + chunk])
            await asyncio.gather(*(batch.delivery for batch in sent))
    finally:
        await producer.stop()


def _contender(settings: Settings, command: list[str], log_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")} | settings_env(settings)
    with log_path.open("w") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def _tear_down(run: Settings, processes: list[subprocess.Popen], watcher: OutputWatcher) -> None:
    """Stop the contender's processes (SIGTERM, then SIGKILL after 30 s), the watcher, and delete the run's topics."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    watcher.close()
    delete_topics(run, [run.topic_transactions, run.topic_scores, changelog_topic(run)])


def measure(settings: Settings, name: str, command: list[str], backlog: list, warm_up: int,
            steady: dict[float, list], root: Path, console: Console, profiled: bool = False) -> Figures:
    """Drain a backlog (timing all but its first ``warm_up`` outputs), then, at each rate it kept up with, a steady stream.

    ``profiled``: py-spy samples the contender while timed, for its time budget per event.
    """
    suffix = uuid.uuid4().hex[:8]
    run = settings.model_copy(update={"topic_transactions": f"bench-in-{suffix}", "topic_scores": f"bench-out-{suffix}",
                                      "scorer_app_id": f"bench-{suffix}"})
    create_topics(run, {run.topic_transactions: run.partitions_transactions, run.topic_scores: run.partitions_scores})
    _send(run, run.topic_transactions, backlog)
    watcher = OutputWatcher(run, run.topic_scores)
    process = _contender(run, command, root / f"{name.replace(' ', '-')}.log")
    alive = lambda: process.poll() is None  # noqa: E731
    try:
        watcher.wait_for(warm_up, timeout_s=300, alive=alive)
        if command[-1] == "stream_scorer":  # the worker scores before its start-up ends (Feast open, gc.freeze)
            deadline = time.monotonic() + 120
            while not worker_ready(run) and alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        profile = root / f"{name.replace(' ', '-')}.pyspy"
        profiler, outputs_before = _start_profile(process.pid, profile) if profiled and alive() else None, len(watcher.arrivals)
        watcher.wait_for(len(backlog), timeout_s=300, alive=alive)
        budget = _stop_profile(profiler, profile, len(watcher.arrivals) - outputs_before)
        if process.poll() is not None or not watcher.arrivals:
            raise RuntimeError(f"{name} produced {len(watcher.arrivals)} outputs; see {root / (name.replace(' ', '-') + '.log')}")
        times = sorted(arrived for arrived, _ in watcher.arrivals)
        timed = times[outputs_before:]  # from the end of the warm-up (and of the worker's start-up)
        events_per_s = (len(timed) - 1) / (timed[-1] - timed[0]) if len(timed) > 1 and timed[-1] > timed[0] else 0.0
        console.log(f"{name}: {len(times):,} outputs, sustained {events_per_s:,.0f} events/s over the last {len(timed):,}")
        latency = {}
        for rate, records in steady.items():
            if events_per_s < rate * 1.2:
                continue
            before = len(watcher.arrivals)
            _send(run, run.topic_transactions, records, rate=rate)
            watcher.wait_for(before + len(records), timeout_s=60, alive=alive)
            latencies = [(arrived - origin) * 1000 for arrived, origin in watcher.arrivals[before:]]
            latency[rate] = (float(np.quantile(latencies, 0.5)), float(np.quantile(latencies, 0.99)))
            console.log(f"{name}: at {rate:,.0f} events/s offered, latency p50 {latency[rate][0]:.0f} ms, "
                        f"p99 {latency[rate][1]:.0f} ms")
        return Figures(events_per_s, latency, budget, len(timed))
    finally:
        _tear_down(run, [process], watcher)


@dataclass(frozen=True)
class ScaleOut:
    """N workers in one consumer group: their events/s, each one's CPU while timed, and the accounting."""

    workers: int
    events_per_s: float
    cpu_cores: tuple[float, ...]  # per worker process (with its helpers): CPU seconds / wall seconds while timed
    accounting: Accounting

    @property
    def per_busy_core(self) -> float:
        """Events/s per core the workers kept busy: what one worker core would give on a cluster."""
        busy = sum(self.cpu_cores)
        return self.events_per_s / busy if busy else 0.0


def measure_scale_out(settings: Settings, workers: int, backlog: list, ids: list[str], warm_up: int, root: Path,
                      console: Console) -> ScaleOut:
    """Score ``backlog`` with ``workers`` worker processes in one consumer group; account for every transaction.

    The first ``warm_up`` records wait when the first worker starts; the others join once
    it scores, so the group rebalances mid-run and the accounting (every id scored, no two
    differing scores) covers it. Once every worker is ready (its /readyz) and the warm-up
    is scored, the rest is published as fast as the producer goes; events/s and each
    worker's CPU are measured from then to the last output (the producer shares the cores).
    """
    suffix = uuid.uuid4().hex[:8]
    run = settings.model_copy(update={"topic_transactions": f"scale-in-{suffix}", "topic_scores": f"scale-out-{suffix}",
                                      "scorer_app_id": f"scale-{suffix}"})
    create_topics(run, {run.topic_transactions: run.partitions_transactions, run.topic_scores: run.partitions_scores})
    _send(run, run.topic_transactions, backlog[:warm_up])
    watcher = OutputWatcher(run, run.topic_scores, keep_scores=True)
    started: list[tuple[subprocess.Popen, Settings]] = []

    def start_worker() -> None:
        own = run.model_copy(update={"scorer_metrics_port": free_port()})
        log_path = root / f"scale-{workers}-worker-{len(started) + 1}.log"
        started.append((_contender(own, [sys.executable, "-m", "stream_scorer"], log_path), own))

    def alive() -> bool:
        return all(process.poll() is None for process, _ in started)

    try:
        start_worker()
        watcher.wait_for(warm_up // 4, timeout_s=300, alive=alive)
        for _ in range(workers - 1):
            start_worker()
        deadline = time.monotonic() + 300
        while not all(worker_ready(own) for _, own in started) and alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        watcher.wait_for(warm_up, timeout_s=300, alive=alive)
        if not alive() or len(watcher.arrivals) < warm_up:
            tails = "\n".join(path.read_text()[-1500:] for path in sorted(root.glob(f"scale-{workers}-worker-*.log")))
            raise RuntimeError(f"{workers} workers scored {len(watcher.arrivals):,} of the {warm_up:,} warm-up "
                               f"events; their logs end:\n{tails}")
        cpu_before, wall_before = [tree_cpu_s(process.pid) for process, _ in started], time.monotonic()
        _send(run, run.topic_transactions, backlog[warm_up:])
        watcher.wait_for(len(backlog), timeout_s=600, alive=alive)
        wall = time.monotonic() - wall_before
        cores = tuple((tree_cpu_s(process.pid) - before) / wall
                      for (process, _), before in zip(started, cpu_before, strict=True))
        if not alive():
            raise RuntimeError(f"a worker of {workers} died; see {root}/scale-{workers}-worker-*.log")
        time.sleep(2.0)  # a late duplicate would still count
        events_per_s = (len(backlog) - warm_up) / wall
        accounting = account(ids, watcher.scores, [])
        console.log(f"{workers} worker(s): {events_per_s:,.0f} events/s, CPU "
                    f"{', '.join(f'{c:.2f}' for c in cores)} cores; {accounting.describe()}")
        return ScaleOut(workers, events_per_s, cores, accounting)
    finally:
        _tear_down(run, [process for process, _ in started], watcher)


def run_scale_out(settings: Settings, worker_counts: tuple[int, ...] = (1, 2), events: int = 30_000,
                  users: int = 10_000, warm_up: int = 20_000, console: Console | None = None) -> list[ScaleOut]:
    """`fraud bench stream --workers 1,2`: the same backlog drained by each number of workers; print the table."""
    from benchmarks.predictor import _mlp_model, _serve

    console = console or Console()
    LocalKafka(settings).start()
    results = []
    with tempfile.TemporaryDirectory(prefix="fraud-bench-scale-") as scratch:
        root = Path(scratch)
        bench = settings.model_copy(update={"data_dir": root, "predictor_port": free_port()})
        console.log(f"setting up: MLP model, Feast store with {users:,} users, predictor on {bench.predictor_url}")
        _mlp_model(root)
        _prepare_store(bench, users)
        predictor = _serve(root, bench.predictor_port, zero=False, pin=False)
        transactions = list(synthetic_transactions(warm_up + events, users=users, seed=8))
        backlog = [encode(t, bench.event_source) for t in transactions]
        ids = [t.transaction_id for t in transactions]
        try:
            for workers in worker_counts:
                results.append(measure_scale_out(bench, workers, backlog, ids, warm_up, root, console))
        finally:
            predictor.terminate()
            predictor.wait(timeout=30)
    _print_scale_out(results, events, warm_up, console)
    return results


def _print_scale_out(results: list[ScaleOut], events: int, warm_up: int, console: Console) -> None:
    table = Table(title=f"scale-out: {warm_up + events:,} events drained by N workers in one group on "
                        f"{os.cpu_count()} cores (the last {events:,}, published once all are ready); the producer, "
                        "the predictor and Kafka share the machine")
    for column in ("workers", "events/s", "x 1", "CPU cores each", "ev/s per core", "lost", "dup same", "dup differ"):
        table.add_column(column, justify="right")
    single = results[0].events_per_s or float("nan")
    for r in results:
        table.add_row(str(r.workers), f"{r.events_per_s:,.0f}", f"{r.events_per_s / single:.2f}",
                      ", ".join(f"{c:.2f}" for c in r.cpu_cores), f"{r.per_busy_core:,.0f}", f"{r.accounting.lost:,}",
                      f"{r.accounting.duplicated_identical:,}", f"{r.accounting.duplicated_different:,}")
    console.print(table)


BASELINES = {"raw aiokafka (limit)": "raw", "quixstreams": "quix", "faust passthrough": "passthrough"}


# Events in every backlog beyond the warm-up and the timed ones: what the worker scores after its warm-up while its
# start-up ends (Feast's push process, the collector frozen). Timing starts only then, and at 25,000 events/s that
# took the rest of a 50,000 backlog. A contender with no start-up to wait for is timed over them too.
START_UP_EVENTS = 100_000


def run(settings: Settings, events: int = 30_000, batch_sizes: tuple[int, ...] = (100, 500, 2000), users: int = 10_000,
        rates: tuple[float, ...] = (1000.0, 5000.0), steady_seconds: float = 10.0, per_event_events: int = 3000,
        warm_up: int = 20_000, console: Console | None = None) -> dict[str, Figures]:
    """Measure every contender once; print the table; return the figures."""
    from benchmarks.predictor import _mlp_model, _serve

    console = console or Console()
    LocalKafka(settings).start()
    results: dict[str, Figures] = {}
    with tempfile.TemporaryDirectory(prefix="fraud-bench-stream-") as scratch:
        root = Path(scratch)
        bench = settings.model_copy(update={"data_dir": root, "predictor_port": free_port(),
                                            "scorer_metrics_port": free_port()})
        console.log(f"setting up: MLP model, Feast store with {users:,} users, predictor on {bench.predictor_url}")
        _mlp_model(root)
        _prepare_store(bench, users)
        predictor = _serve(root, bench.predictor_port, zero=False, pin=False)
        counts = [int(rate * steady_seconds) for rate in rates]
        drained = warm_up + START_UP_EVENTS + events
        source = synthetic_transactions(drained + sum(counts), users=users, seed=7)
        records = [encode(t, bench.event_source) for t in source]
        backlog, steady, start = records[:drained], {}, drained
        for rate, count in zip(rates, counts, strict=True):
            steady[rate], start = records[start:start + count], start + count
        per_event_warm_up = per_event_events // 10
        baseline = [sys.executable, "-m", "benchmarks.stream_baselines"]
        try:
            for size in batch_sizes:
                sized = bench.model_copy(update={"scorer_batch_size": size})
                results[f"ours (batch {size})"] = measure(sized, f"ours batch {size}", [sys.executable, "-m", "stream_scorer"],
                                                          backlog, warm_up, steady, root, console, profiled=True)
            for name, kind in BASELINES.items():
                # Faust's pass-through is profiled too: what Faust and the client cost per event with no scoring at all.
                results[name] = measure(bench, kind, [*baseline, kind], backlog, warm_up, steady, root, console,
                                        profiled=kind == "passthrough")
            results["per-event (seed design)"] = measure(
                bench, "per-event", [*baseline, "per-event"], backlog[:per_event_warm_up + per_event_events],
                per_event_warm_up, steady, root, console)
        finally:
            predictor.terminate()
            predictor.wait(timeout=30)
    _print(results, events, warm_up, per_event_events, rates, console)
    _print_budget(results, console)
    return results


def _print(results: dict[str, Figures], events: int, warm_up: int, per_event_events: int, rates: tuple[float, ...],
           console: Console) -> None:
    limit = results["raw aiokafka (limit)"].events_per_s
    faust_ceiling = results["faust passthrough"].events_per_s
    per_event = results["per-event (seed design)"].events_per_s
    table = Table(title=f"stream benchmark: backlogs of {warm_up + START_UP_EVENTS + events:,} events, timed after the "
                        f"first {warm_up:,} and the worker's start-up ({per_event_events:,} after {per_event_events // 10:,} "
                        f"for per-event), latency at {', '.join(f'{r:,.0f}' for r in rates)} events/s offered; "
                        "everything on this machine")
    table.add_column("contender")
    for column in ("events/s", "timed events", "x per-event", "/ raw", "/ faust", *(f"p50 | p99 ms @{r:,.0f}/s" for r in rates)):
        table.add_column(column, justify="right")
    for name, f in results.items():
        latency = [f"{f.latency_ms[r][0]:,.0f} | {f.latency_ms[r][1]:,.0f}" if r in f.latency_ms else "-" for r in rates]
        table.add_row(name, f"{f.events_per_s:,.0f}", f"{f.timed_events:,}", f"{f.events_per_s / per_event:.1f}", f"{f.events_per_s / limit:.2f}",
                      f"{f.events_per_s / faust_ceiling:.2f}", *latency)
    console.print(table)
    ours = {name: f for name, f in results.items() if name.startswith("ours")}
    best_name, best = max(ours.items(), key=lambda item: item[1].events_per_s)
    console.print(f"best: {best_name} {best.events_per_s:,.0f} events/s (target >= 15,000), "
                  f"{best.events_per_s / limit:.2f} of raw aiokafka (target >= 0.3); "
                  + "; ".join(f"p99 at {r:,.0f}/s {best.latency_ms[r][1]:,.0f} ms" if r in best.latency_ms
                              else f"no p99 at {r:,.0f}/s (too slow)" for r in rates)
                  + " (targets <= 100 ms at 1,000/s, <= 150 ms at 5,000/s)")


def _print_budget(results: dict[str, Figures], console: Console) -> None:
    staged = {name: f.budget_us for name, f in results.items() if f.budget_us}
    if not staged:
        return
    table = Table(title="where the time per event goes while timed (the worker, and Faust's pass-through): µs per event holding the GIL "
                        f"(py-spy --gil, {PROFILE_RATE} samples/s; total vs 1 / events/s shows how busy its core was)")
    table.add_column("contender")
    for column in (*BUDGET_COLUMNS, "total", "1 / events/s"):
        table.add_column(column, justify="right")
    for name, budget in staged.items():
        table.add_row(name, *(f"{budget[c]:,.1f}" for c in BUDGET_COLUMNS), f"{sum(budget.values()):,.1f}",
                      f"{1e6 / results[name].events_per_s:,.1f}")
    console.print(table)


if __name__ == "__main__":
    from fraud.settings import load_settings

    run(load_settings())
