"""`fraud bench soak`: does a worker's memory stay bounded over a long run with many distinct users?

One real `python -m stream_scorer` worker drains a backlog of ``events``
transactions from ``users`` distinct users (default 1,000,000 from 200,000),
set up as `fraud bench stream` sets up its contenders: the stack's broker, the
MLP predictor, a Feast store holding every user's profile, fresh topics. The
backlog is produced before the worker starts, so producing takes no CPU from it.

Reported: the resident memory (RSS) of the worker's process tree (the worker;
its helpers: the Feast push process and multiprocessing's resource tracker)
when it starts, once it is ready, at every tenth of the events (the last at
the end) and at its peak; the events/s.
What may grow with distinct users, and should level off once every user has
been seen: the user table (one state each, bounded since it keeps at most
RECENT_MERCHANTS merchants) and the profile cache (at most
FRAUD_PROFILE_CACHE_MAX_USERS). Nothing should grow with events alone.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path

import psutil
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from benchmarks.predictor import _mlp_model, _serve
from benchmarks.stream import _contender, _prepare_store, _send
from fraud.events import encode
from fraud.local_stack.kafka import LocalKafka, create_topics, delete_topics
from fraud.local_stack.process import free_port
from fraud.local_stack.worker import scrape
from fraud.settings import Settings
from producers.synthetic import synthetic_transactions
from stream_scorer.seed import changelog_topic

MB = 1_000_000
_CHUNK = 50_000  # events encoded and sent at a time: the backlog is never all in this process's memory


@dataclass(frozen=True)
class Sample:
    """The worker's progress and its process tree's memory at one moment."""

    elapsed_s: float  # since the worker's metrics first answered
    handled: int  # scores out + dead letters
    worker_bytes: int
    helper_bytes: int
    helpers: int
    moment: str = ""  # "started", "ready", or "" for a tenth of the events

    @property
    def tree_bytes(self) -> int:
        return self.worker_bytes + self.helper_bytes


@dataclass(frozen=True)
class SoakReport:
    """Samples from the worker's start to the end, the peak tree RSS seen in between, and how many distinct users."""

    samples: list[Sample]
    peak_tree_bytes: int
    users_seen: int

    @property
    def ready(self) -> Sample:
        return next(sample for sample in self.samples if sample.moment == "ready")

    @property
    def events_per_s(self) -> float:
        """While it scores: from the first row with scores out to the first with all of them (start-up left out)."""
        scoring = [sample for sample in self.samples if sample.handled > 0]
        if not scoring:
            return 0.0
        first = scoring[0]
        last = next(sample for sample in scoring if sample.handled == scoring[-1].handled)
        return (last.handled - first.handled) / (last.elapsed_s - first.elapsed_s) if last is not first else 0.0


def tree_rss(pid: int) -> tuple[int, int, int]:
    """RSS of process ``pid``, the summed RSS of its descendants, and how many descendants there are."""
    root = psutil.Process(pid)
    own, rest, helpers = root.memory_info().rss, 0, 0
    for helper in root.children(recursive=True):
        try:
            rest += helper.memory_info().rss
            helpers += 1
        except psutil.NoSuchProcess:  # gone between the listing and the reading
            pass
    return own, rest, helpers


def _handled(metrics: dict[str, float]) -> int:
    return int(metrics.get("fraud_scorer_scores_out_total", 0) + metrics.get("fraud_scorer_dead_letters_total", 0))


def _produce_backlog(settings: Settings, events: int, users: int, console: Console) -> int:
    """Publish ``events`` synthetic transactions to the input topic; return how many distinct users they have."""
    source = synthetic_transactions(events, users=users, seed=11)
    seen: set[str] = set()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("producing the backlog", total=events)
        while chunk := list(islice(source, _CHUNK)):
            seen.update(transaction.user_id for transaction in chunk)
            _send(settings, settings.topic_transactions, [encode(t, settings.event_source) for t in chunk])
            progress.advance(task, len(chunk))
    return len(seen)


def _watch(settings: Settings, process: subprocess.Popen, log_path: Path, events: int, rows: int, interval_s: float,
           stall_s: float, console: Console) -> tuple[list[Sample], int]:
    """Sample the worker from its start until it is ready and has handled ``events``; a row every ``events / rows``.

    Also returns the peak tree RSS over all samples (one every ``interval_s``).
    The worker scores before it reports ready (readiness waits for its Feast
    push helper), so "ready" may come after a few rows, or after all of them.
    """
    def failed(why: str) -> RuntimeError:  # the log lives in the scratch dir, gone after the run: quote it
        return RuntimeError(f"{why}; the worker's log ends with:\n{log_path.read_text()[-3000:]}")

    def alive_metrics() -> dict[str, float] | None:
        if process.poll() is not None:
            raise failed(f"the worker exited ({process.returncode})")
        return scrape(settings)

    started = time.monotonic()
    while (metrics := alive_metrics()) is None:
        if time.monotonic() - started > 180:
            raise failed("the worker served no metrics after 180 s")
        time.sleep(0.2)
    started = progressed = time.monotonic()
    samples = [Sample(0.0, _handled(metrics), *tree_rss(process.pid), moment="started")]
    peak, handled, ready = samples[0].tree_bytes, samples[0].handled, False
    milestones = [events * k // rows for k in range(1, rows + 1)]
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("worker handling the backlog", total=events, completed=handled)
        while handled < events or not ready:
            time.sleep(interval_s)
            metrics, now = alive_metrics(), time.monotonic()
            if metrics is not None and _handled(metrics) > handled:
                handled, progressed = _handled(metrics), now
            elif now - progressed > stall_s and handled < events:
                raise failed(f"the worker handled nothing for {stall_s:.0f} s, at {handled:,} of {events:,}")
            if not ready and now - started > 180:
                raise failed("the worker was not ready after 180 s")
            sample = Sample(now - started, handled, *tree_rss(process.pid))
            peak = max(peak, sample.tree_bytes)
            progress.update(task, completed=handled)
            became_ready = not ready and metrics is not None and metrics.get("fraud_scorer_ready") == 1
            passed = bool(milestones) and handled >= milestones[0]  # the last milestone is ``events``: the end is a row
            if became_ready or passed:
                samples.append(replace(sample, moment="ready" if became_ready else ""))
                ready = ready or became_ready
                milestones = [m for m in milestones if m > handled]
    return samples, peak


def run(settings: Settings, events: int = 1_000_000, users: int = 200_000, rows: int = 10, interval_s: float = 0.5,
        stall_s: float = 120.0, console: Console | None = None) -> SoakReport:
    """Drain ``events`` events from ``users`` users through one worker; print and return its memory over time."""
    console = console or Console()
    LocalKafka(settings).start()
    suffix = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="fraud-bench-soak-") as scratch:
        root = Path(scratch)
        soak = settings.model_copy(update={
            "data_dir": root, "predictor_port": free_port(), "scorer_metrics_port": free_port(),
            "topic_transactions": f"soak-in-{suffix}", "topic_scores": f"soak-out-{suffix}",
            "topic_dlq": f"soak-dlq-{suffix}", "scorer_app_id": f"soak-{suffix}"})
        topics = {soak.topic_transactions: soak.partitions_transactions, soak.topic_scores: soak.partitions_scores,
                  soak.topic_dlq: 1}
        console.log(f"setting up: MLP model, Feast store with {users:,} users, predictor on {soak.predictor_url}")
        _mlp_model(root)
        _prepare_store(soak, users)
        create_topics(soak, topics)
        predictor = worker = None
        try:
            predictor = _serve(root, soak.predictor_port, zero=False, pin=False)
            users_seen = _produce_backlog(soak, events, users, console)
            console.log(f"backlog: {events:,} events from {users_seen:,} distinct users; starting the worker")
            log_path = root / "worker.log"
            worker = _contender(soak, [sys.executable, "-m", "stream_scorer"], log_path)
            samples, peak = _watch(soak, worker, log_path, events, rows, interval_s, stall_s, console)
        finally:
            for process in (worker, predictor):
                if process is not None:
                    process.terminate()
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
            delete_topics(soak, [*topics, changelog_topic(soak)])
    report = SoakReport(samples, peak, users_seen)
    _print(report, events, users, console)
    return report


def _print(report: SoakReport, events: int, users: int, console: Console) -> None:
    table = Table(title=f"soak: {events:,} events from {report.users_seen:,} distinct users (of {users:,}) through one "
                        "worker; RSS of its process tree")
    for column in ("moment", "events handled", "elapsed s", "events/s", "worker MB", "helpers MB", "tree MB"):
        table.add_column(column, justify="left" if column == "moment" else "right")
    previous = None
    for sample in report.samples:
        rate = "-" if previous is None or sample.elapsed_s <= previous.elapsed_s else (
            f"{(sample.handled - previous.handled) / (sample.elapsed_s - previous.elapsed_s):,.0f}")
        table.add_row(sample.moment, f"{sample.handled:,}", f"{sample.elapsed_s:,.1f}", rate,
                      f"{sample.worker_bytes / MB:,.0f}", f"{sample.helper_bytes / MB:,.0f} ({sample.helpers})",
                      f"{sample.tree_bytes / MB:,.0f}")
        previous = sample
    console.print(table)
    ready, last = report.ready, report.samples[-1]
    half = min(report.samples, key=lambda s: abs(s.handled - events / 2))
    console.print(f"{report.events_per_s:,.0f} events/s; tree RSS {ready.tree_bytes / MB:,.0f} MB "
                  f"when ready, {last.tree_bytes / MB:,.0f} MB at the end (peak {report.peak_tree_bytes / MB:,.0f} MB): "
                  f"{(last.tree_bytes - ready.tree_bytes) / max(report.users_seen, 1):,.0f} bytes per distinct user; "
                  f"from half the events to the end, the worker {(last.worker_bytes - half.worker_bytes) / MB:+,.0f} MB, "
                  f"its helpers {(last.helper_bytes - half.helper_bytes) / MB:+,.0f} MB")
