"""`fraud bench recovery`: how soon a restarted worker scores again, with its table on disk and without.

On a scratch `ChaosStack` (its own broker, the predictor with a tiny ONNX model, a
Feast store), one real `python -m stream_scorer` worker (static member
``recovery-worker``, RocksDB table) first scores one transaction of each of
``users`` users, so its table holds ``users`` states. Then it is restarted, each
time with one new transaction waiting for it, and timed from the process start to
that transaction's score (its first new score):

- after a graceful stop (SIGTERM), with its disk;
- after a SIGKILL, with its disk;
- after a graceful stop, with an empty disk (a new node: the whole changelog is read);
- baseline, in the same run: the same worker with the in-memory store (the whole
  changelog is read on every start), after a graceful stop and after a SIGKILL.

Beside each time: how many changelog records Faust read to recover the table
(`replayed`, from the recovery's own log lines).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from benchmarks.chaos_stack import ChaosStack
from fraud.events import KafkaRecord, encode
from fraud.local_stack.kafka import create_topics
from fraud.local_stack.process import free_port
from fraud.local_stack.worker import LocalWorker, scrape
from fraud.settings import Settings
from producers.publisher import make_producer
from producers.synthetic import synthetic_transactions
from stream_scorer.app import table_dir

_CHUNK = 50_000  # transactions encoded and sent at a time
# A row of Faust's recovery tables ("Highwater - Active", "Reading Starts At - Active"): topic (blank when
# it repeats the row above), partition, offset.
_FILLED = re.compile(r"empty table directory: (\d+) records")
_ROW = re.compile(r"^[│|]\s*(\S*)\s*[│|]\s*(\d+)\s*[│|]\s*(-?\d+)\s*[│|]\s*$")


@dataclass(frozen=True)
class Recovery:
    """One restart: which store and start, seconds from the process start to its first new score, records replayed."""

    users: int
    store: str
    start: str
    seconds: float
    replayed: int
    recovered_s: float | None  # from the process start to Faust's "Worker ready": the table recovered, partitions resumed
    faust_start_s: float | None = None  # from the process start to Faust's start: imports, the disk's check, the app built
    filled: int = 0  # changelog records written in bulk to an empty table directory (`stream_scorer.table_fill`)


def replayed_records(log: str) -> int:
    """Changelog records Faust read to recover its active table partitions, from its recovery log tables.

    Faust logs, per active changelog partition, the highwater (last offset) and the
    offset it reads from (the persisted one, or -1 for nothing): it reads the records between.
    """
    tables: dict[str, dict[int, int]] = {}
    current: dict[int, int] | None = None
    for line in log.splitlines():
        if "Highwater - Active" in line or "Reading Starts At - Active" in line:
            current = tables.setdefault("highwater" if "Highwater" in line else "start", {})
        elif "Reading Starts At - Standby" in line or "Highwater - Standby" in line:
            current = None
        elif current is not None and (row := _ROW.match(line.strip())):
            current[int(row.group(2))] = int(row.group(3))
    highwater, start = tables.get("highwater", {}), tables.get("start", {})
    return sum(max(0, highwater[p] - start.get(p, -1)) for p in highwater)


def filled_records(log: str) -> int:
    """Changelog records the worker wrote in bulk to its empty table directory, from its log line."""
    found = _FILLED.search(log)
    return int(found.group(1)) if found else 0


def ready_at(log: str) -> float | None:
    """When Faust logged its recovery done ("Worker ready"), as a Unix time; None if it did not."""
    return logged_at(log, "[^---Recovery]: Worker ready")


def logged_at(log: str, marker: str) -> float | None:
    """When the first line holding ``marker`` was logged (Faust's "[time]" or logging's "time" prefix), as a Unix time."""
    for line in log.splitlines():
        if marker in line:
            stamp = line[1:24] if line.startswith("[") else line[:23]
            return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()  # the worker's local time
    return None


class RestartingWorker:
    """One worker (one group instance id, one disk) restarted in the ways the benchmark measures."""

    def __init__(self, settings: Settings, users: int) -> None:
        self.settings, self.users = settings, users
        self.worker = LocalWorker(settings, name="recovery-worker")
        self.probes = 0
        # replaying a whole changelog takes a while at a million users: allow 1 s per 2,000 on top
        self.patience_s = settings.stack_start_timeout_s * 4 + users / 2_000

    def fill(self, users: int, console: Console) -> None:
        """Score one transaction of each of ``users`` users, so the table holds ``users`` states."""
        self.send([encoded for encoded in _one_each(users, self.settings.event_source)])
        self.worker.start()
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("the worker scores one transaction per user", total=users)
            done = 0
            while done < users:
                time.sleep(0.5)
                done = int((self.worker.status().metrics or {}).get("fraud_scorer_scores_out_total", 0))
                progress.update(task, completed=done)
                if self.worker.files.read_pid() is None:
                    raise self.failed("the worker died while filling its table")

    def failed(self, why: str) -> RuntimeError:
        """An error quoting the worker's log, which lives in the scratch dir and goes with it."""
        return RuntimeError(f"{why}; the end of its log:\n{self.worker.files.log_tail(60)}")

    def send(self, records: list[KafkaRecord]) -> None:
        producer = make_producer(self.settings)
        try:
            for start in range(0, len(records), _CHUNK):
                for key, value, headers in records[start:start + _CHUNK]:
                    producer.send(self.settings.topic_transactions, key=key, value=value, headers=headers)
            producer.flush()
        finally:
            producer.close()

    def restart(self, store: str, start: str, stop: Callable[[], object], store_setting: str | None = None,
                empty_disk: bool = False) -> Recovery:
        """Stop (``stop``), queue one new transaction, start again; time the start to its score."""
        stop()
        if empty_disk:
            shutil.rmtree(table_dir(self.settings), ignore_errors=True)
        if store_setting is not None:
            self.settings = self.settings.model_copy(update={"scorer_table_store": store_setting})
            self.worker = LocalWorker(self.settings, name="recovery-worker")
        self.probes += 1
        probe = next(iter(synthetic_transactions(1, users=1, seed=1000 + self.probes)))
        self.send([encode(probe.model_copy(update={"transaction_id": f"probe-{self.probes}"}), "bench.recovery")])
        log_start = self.worker.files.log_file.stat().st_size if self.worker.files.log_file.exists() else 0
        started, started_at = time.perf_counter(), time.time()
        self.worker.start()
        while (scrape(self.settings, timeout_s=1.0) or {}).get("fraud_scorer_scores_out_total", 0) < 1:
            if self.worker.files.read_pid() is None:
                raise self.failed("the worker died on its restart")
            if time.perf_counter() - started > self.patience_s:
                raise self.failed(f"no score {time.perf_counter() - started:.0f}s after the restart")
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        with self.worker.files.log_file.open("rb") as log:
            log.seek(log_start)
            text = log.read().decode(errors="replace")
        ready, faust = ready_at(text), logged_at(text, "[^Worker]: Starting...")
        return Recovery(self.users, store, start, seconds, replayed_records(text),
                        None if ready is None else ready - started_at, None if faust is None else faust - started_at,
                        filled_records(text))


def _one_each(users: int, source: str) -> list[KafkaRecord]:
    """One synthetic transaction for each of user_0 .. user_<users-1>."""
    transactions = synthetic_transactions(users, users=users, seed=7)
    return [encode(t.model_copy(update={"user_id": f"user_{n}"}), source) for n, t in enumerate(transactions)]


def run(settings: Settings, users: Sequence[int] = (50_000,), console: Console | None = None) -> list[Recovery]:
    """For each size in ``users``: fill a worker's table with that many states, restart it in each way; print the table."""
    console = console or Console()
    results: list[Recovery] = []
    with tempfile.TemporaryDirectory(prefix="fraud-bench-recovery-") as scratch:
        console.log("starting a scratch stack: Kafka broker, predictor (tiny ONNX model), Feast store")
        with ChaosStack(settings, Path(scratch), known_users=100) as stack:
            for size in users:
                results += _restarts(stack.settings, size, console)
    _print(results, console)
    return results


def _restarts(base: Settings, users: int, console: Console) -> list[Recovery]:
    """One worker of its own (topics, group, disk) with ``users`` states, restarted in each way the benchmark measures."""
    suffix = uuid.uuid4().hex[:6]
    own = base.model_copy(update={
        "topic_transactions": f"recovery-tx-{suffix}", "topic_scores": f"recovery-scores-{suffix}",
        "topic_dlq": f"recovery-dlq-{suffix}", "topic_labels": f"recovery-labels-{suffix}",
        "scorer_app_id": f"recovery-{suffix}", "scorer_group_instance_id": "recovery-worker",
        "scorer_metrics_port": free_port(), "scorer_table_store": "rocksdb"})
    create_topics(own)
    subject = RestartingWorker(own, users)
    results = []
    try:
        began = time.perf_counter()
        subject.fill(users, console)
        console.log(f"{users:,} users' states in the table after {time.perf_counter() - began:,.0f}s")
        for store, start, stop, setting, empty in (
                ("rocksdb", "graceful stop, with its disk", "stop", None, False),
                ("rocksdb", "SIGKILL, with its disk", "kill", None, False),
                ("rocksdb", "graceful stop, empty disk (cold)", "stop", None, True),
                ("memory (baseline)", "graceful stop", "stop", "memory", False),
                ("memory (baseline)", "SIGKILL", "kill", None, False)):
            result = subject.restart(store, start, getattr(subject.worker, stop), setting, empty)
            console.log(f"{users:,} users, {store}, {start}: table recovered {_seconds(result.recovered_s)}s and first "
                        f"new score {result.seconds:.1f}s after the start, {result.replayed:,} changelog records replayed")
            results.append(result)
    finally:
        subject.worker.stop()
    return results


def _print(results: list[Recovery], console: Console) -> None:
    table = Table(title="recovery: a worker restarted with N users' states in its table")
    for column in ("users", "store", "restart after", "s to Faust's start", "s to table recovered",
                   "s to first new score", "changelog records replayed", "filled in bulk"):
        table.add_column(column, justify="left" if column in ("store", "restart after") else "right")
    for result in results:
        table.add_row(f"{result.users:,}", result.store, result.start, _seconds(result.faust_start_s),
                      _seconds(result.recovered_s),
                      f"{result.seconds:.1f}", f"{result.replayed:,}", f"{result.filled:,}")
    console.print(table)
    console.print("From the start of `python -m stream_scorer`; the first score also waits for the Feast store to open.")


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}"
