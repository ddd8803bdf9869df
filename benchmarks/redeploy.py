"""`fraud bench redeploy` and tests/reliability: a model redeploy under load, without a gap, measured.

On a `ChaosStack` (scratch broker, the real predictor serving a tiny ONNX model,
a Feast store), a real worker scores ``events`` published at ``rate``/s. Midway a
new tiny model (other weights, same features) is registered and promoted, and the
predictor is asked to reload (`fraud.serving.reload_model`, what the pipeline's
deploy step does). Then every score is read back with its partition and offset:

(a) every transaction scored exactly once (`benchmarks.chaos.account`, and no duplicate at all);
(b) the worker's predictor and dependency failure counters did not move across the
    reload, and its paused gauge was 0 in every sample;
(c) per partition of the scores topic, by offset, no score by the old version after
    the first one by the new version;
(d) the new version scored events (the switch happened) and the old one too (it was midway).

The baseline is the same load for the same duration on a fresh worker, without a
redeploy, so the table shows the redeploy's cost in scoring latency (the score
events' ``latency_ms``: record timestamp to publication) beside none.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from benchmarks.chaos import Accounting, account, good_records
from benchmarks.chaos_stack import ChaosStack, Feed, MetricsSampler, Outgoing, Run, register_tiny_model
from fraud.local_stack.worker import LocalWorker, scrape
from fraud.registry import open_registry
from fraud.serving import model_version, reload_model
from fraud.settings import Settings
from fraud.topics import end_offsets, read_between

log = logging.getLogger(__name__)

WINDOW_S = 3.0  # the latency "around the midpoint": scores published in the seconds just before it, and just after
SAMPLE_INTERVAL_S = 0.1  # a pause shorter than this can slip between samples; the failure counters catch it anyway
PREDICTOR_FAILURES = "fraud_scorer_predictor_failures_total"
DEPENDENCY_FAILURES = "fraud_scorer_dependency_failures_total"


@dataclass(frozen=True)
class ScoreSeen:
    """One score event as it sits in the scores topic."""

    partition: int
    offset: int
    model_version: str
    latency_ms: float
    scored_at: float  # epoch seconds


@dataclass(frozen=True)
class Swap:
    """What the redeploy did: versions, how long the reload call took, and when (epoch seconds)."""

    old_version: str
    new_version: str
    reload_s: float
    started_at: float
    answer: str


@dataclass
class Phase:
    """One measured run: the same load, with or without a redeploy midway."""

    name: str
    events: int
    publish_s: float = 0.0
    midpoint_at: float = 0.0  # epoch seconds when half the events were offered (the reload began, if any)
    accounting: Accounting | None = None
    scores: list[ScoreSeen] = field(default_factory=list)
    samples: int = 0
    paused_samples: int = 0
    predictor_failures: float = 0.0  # across the reload (the whole run for the baseline)
    dependency_failures: float = 0.0
    swap: Swap | None = None
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def rate(self) -> float:
        """Events/s the producer achieved."""
        return self.events / self.publish_s if self.publish_s else 0.0

    def latency(self, quantile: float, window: tuple[float, float] | None = None) -> float:
        """A quantile of the score events' latency_ms (NaN without scores); ``window``: published within (from, to)
        seconds of the midpoint only."""
        low, high = (self.midpoint_at + window[0], self.midpoint_at + window[1]) if window else (-np.inf, np.inf)
        values = [score.latency_ms for score in self.scores if low <= score.scored_at < high]
        return float(np.quantile(values, quantile)) if values else float("nan")

    def versions(self) -> dict[str, int]:
        """Score events per model version."""
        return dict(sorted(Counter(score.model_version for score in self.scores).items()))

    def summary(self) -> str:
        """One line of the figures, then the violations."""
        swap = (f"reload v{self.swap.old_version} -> v{self.swap.new_version} in {self.swap.reload_s:.3f}s, first "
                f"v{self.swap.new_version} at " + ", ".join(f"p{p}@{o}" for p, o in sorted(self.switch_offsets().items()))
                if self.swap else "no reload")
        return "\n".join([f"{self.name}: {self.events:,} events at {self.rate:,.0f}/s, latency p50 {self.latency(0.5):,.0f} ms "
                          f"p99 {self.latency(0.99):,.0f} ms; {swap}; failed predictor calls {self.predictor_failures:,.0f}, "
                          f"paused in {self.paused_samples} of {self.samples} samples; scores per version {self.versions()}",
                          *(f"  VIOLATION: {violation}" for violation in self.violations)])

    def switch_offsets(self) -> dict[int, int | None]:
        """Per scores partition, the offset of the first score by the new version (None: none there)."""
        if self.swap is None:
            return {}
        first: dict[int, int | None] = {}
        for score in sorted(self.scores, key=lambda s: (s.partition, s.offset)):
            first.setdefault(score.partition, None)
            if score.model_version == self.swap.new_version and first[score.partition] is None:
                first[score.partition] = score.offset
        return first


def regressions(scores: Sequence[ScoreSeen], old: str, new: str) -> list[str]:
    """Scores by ``old`` after the first by ``new`` on the same partition, and scores by any third version."""
    found: list[str] = []
    switched: dict[int, int] = {}
    for score in sorted(scores, key=lambda s: (s.partition, s.offset)):
        if score.model_version == new:
            switched.setdefault(score.partition, score.offset)
        elif score.model_version != old:
            found.append(f"p{score.partition}@{score.offset} scored by v{score.model_version}, neither v{old} nor v{new}")
        elif score.partition in switched:
            found.append(f"p{score.partition}@{score.offset} scored by v{old} after "
                         f"p{score.partition}@{switched[score.partition]} by v{new}")
    return found


def read_scores(settings: Settings) -> list[ScoreSeen]:
    """Every score event of the run's scores topic, with its partition and offset."""
    seen = []
    for record in read_between(settings, settings.topic_scores, {}, end_offsets(settings, settings.topic_scores)):
        data = orjson.loads(record.value)["data"]
        seen.append(ScoreSeen(record.partition, record.offset, str(data["model_version"]), float(data["latency_ms"]),
                              datetime.fromisoformat(data["scored_at"]).timestamp()))
    return seen


def failures(metrics: dict[str, float] | None) -> tuple[float, float]:
    """(failed predictor calls, transient faults of any dependency) in one scrape of a worker."""
    metrics = metrics or {}
    return metrics.get(PREDICTOR_FAILURES, 0.0), metrics.get(DEPENDENCY_FAILURES, 0.0)


def promote_new_model(settings: Settings) -> tuple[str, str]:
    """Register a tiny model with new weights, promote it; (the previous production version, the new one)."""
    registry = open_registry(settings)
    current = registry.production(settings.model_name)
    # Versions are numbered from 1 in the embedded registry: a seed per version gives each its own weights and file.
    new = register_tiny_model(settings, seed=len(registry.versions(settings.model_name)) + 1)
    return (current.version if current else ""), new


def redeploy(settings: Settings) -> Swap:
    """What the pipeline's deploy step does, timed: promote a new version, ask the predictor to reload."""
    old, new = promote_new_model(settings)
    started_at, began = time.time(), time.perf_counter()
    answer = reload_model(settings)
    return Swap(old, new, time.perf_counter() - began, started_at, answer)


def measure(stack: ChaosStack, name: str, records: Sequence[Outgoing], rate: float, with_redeploy: bool) -> Phase:
    """Publish ``records`` at ``rate`` to a fresh, warmed-up worker; with a redeploy once half are offered."""
    phase = Phase(name, len(records))
    run = Run(stack, name)
    run.sampler = MetricsSampler(lambda: list(run.live), interval_s=SAMPLE_INTERVAL_S)
    feed = Feed(run.settings, run.settings.topic_transactions, records, rate)
    try:
        worker = run.start_worker()
        run.wait_until(run.all_ready, stack.patience_s, "ready worker")  # Feast opened: no start-up in the latencies
        run.sampler.start()
        feed.start()
        began = time.perf_counter()
        feed.go()
        before = failures(scrape(worker.settings))
        run.wait_until(lambda: feed.offered >= len(records) // 2, stack.patience_s, "half the events offered",
                       interval_s=0.02)
        phase.midpoint_at = time.time()
        if with_redeploy:
            before = failures(scrape(worker.settings))
            phase.swap = redeploy(stack.settings)
        if not feed.wait(timeout_s=stack.patience_s + 120):
            phase.violations.append("the producer had not finished in time")
        phase.publish_s = time.perf_counter() - began
        if not run.wait_for_outcomes(feed.delivered, stack.patience_s):
            phase.violations.append(f"gave up waiting for outcomes: nothing new came out for {stack.patience_s:.0f}s")
        _settle(phase, run, worker, before)
        phase.scores = read_scores(run.settings)
    except Exception as error:  # noqa: BLE001 - a broken run still reports what it saw
        phase.violations.append(f"the run itself failed: {type(error).__name__}: {error}")
    finally:
        feed.go()
        run.sampler.stop()
        run.close()
    phase.accounting = account(feed.delivered, run.outcomes.scores, run.outcomes.dead_letters)
    phase.samples, phase.paused_samples = run.sampler.samples, run.sampler.paused_samples
    phase.violations += run.violations + _violations(phase, feed)
    return phase


def _settle(phase: Phase, run: Run, worker: LocalWorker, before: tuple[float, float]) -> None:
    """The failure counters' moves since ``before``, and whether the predictor serves the new version."""
    after = failures(scrape(worker.settings) or run.sampler.last.get(worker.files.name))
    phase.predictor_failures, phase.dependency_failures = after[0] - before[0], after[1] - before[1]
    if phase.swap is not None and model_version(run.settings) != phase.swap.new_version:
        phase.violations.append(f"the predictor does not serve v{phase.swap.new_version} after the reload "
                                f"({phase.swap.answer})")


def _violations(phase: Phase, feed: Feed) -> list[str]:
    """What breaks (a)-(d) of the module docstring."""
    found = []
    a = phase.accounting
    if feed.error or feed.failed:
        found.append(f"the producer failed: {feed.error or next(iter(feed.failed.values()))}")
    if not (a.scored == a.published == phase.events and a.dead_lettered == a.lost == 0
            and a.duplicated_identical == a.duplicated_different == 0):
        found.append(f"(a) not every transaction scored exactly once: {a.describe()}")
    if len(phase.scores) != a.scored:
        found.append(f"(a) {len(phase.scores):,} score events in the topic for {a.scored:,} transactions scored")
    if phase.predictor_failures or phase.dependency_failures:
        found.append(f"(b) {phase.predictor_failures:,.0f} failed predictor calls, {phase.dependency_failures:,.0f} "
                     f"dependency faults during the run")
    if phase.paused_samples or not phase.samples:
        found.append(f"(b) the worker was paused in {phase.paused_samples} of {phase.samples} samples")
    if phase.swap is not None:
        found += [f"(c) {text}" for text in regressions(phase.scores, phase.swap.old_version, phase.swap.new_version)[:5]]
        counts = phase.versions()
        if not counts.get(phase.swap.new_version) or not counts.get(phase.swap.old_version):
            found.append(f"(d) no switch from v{phase.swap.old_version} to v{phase.swap.new_version} seen: "
                         f"scores per version {counts}")
    return found


def redeploy_under_load(stack: ChaosStack, events: int = 20_000, rate: float = 1_000.0, seed: int = 21) -> Phase:
    """The redeploy run alone (the test's): ``events`` at ``rate``/s, a new version promoted and reloaded midway."""
    return measure(stack, "redeploy", good_records(events, stack.known_users, seed=seed), rate, with_redeploy=True)


def run(settings: Settings, events: int = 20_000, rate: float = 1_000.0, console: Console | None = None) -> list[Phase]:
    """The baseline and the redeploy run, the same load each, on one scratch stack; print the table."""
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="fraud-bench-redeploy-") as scratch:
        console.log("starting a scratch stack: Kafka broker, predictor (tiny ONNX model), Feast store")
        with ChaosStack(settings, Path(scratch)) as stack:
            records, phases = good_records(events, stack.known_users, seed=21), []
            for name, with_redeploy in (("baseline", False), ("redeploy", True)):
                console.log(f"{name}: {events:,} events at {rate:,.0f}/s ...")
                phases.append(measure(stack, name, records, rate, with_redeploy))
    _print(phases, console)
    return phases


def _latencies(phase: Phase, window: tuple[float, float] | None) -> str:
    return " / ".join(f"{phase.latency(q, window):,.0f}" for q in (0.5, 0.99, 1.0))


def _print(phases: Sequence[Phase], console: Console) -> None:
    table = Table(title="redeploy under load: a new model version reloaded midway, beside the same load without one")
    table.add_column("")
    for phase in phases:
        table.add_column(phase.name + ("" if phase.ok else " [red](FAILED)[/]"), justify="right")
    rows = {
        "events": lambda p: f"{p.events:,}",
        "rate achieved /s": lambda p: f"{p.rate:,.0f}",
        "latency p50 / p99 / max ms": lambda p: _latencies(p, None),
        f"  the {WINDOW_S:g} s before midway": lambda p: _latencies(p, (-WINDOW_S, 0.0)),
        f"  the {WINDOW_S:g} s after midway": lambda p: _latencies(p, (0.0, WINDOW_S)),
        "reload call s": lambda p: f"{p.swap.reload_s:.3f}" if p.swap else "-",
        "failed predictor calls": lambda p: f"{p.predictor_failures:,.0f}",
        "dependency faults": lambda p: f"{p.dependency_failures:,.0f}",
        "paused samples": lambda p: f"{p.paused_samples} of {p.samples}",
        "scores per version": lambda p: ", ".join(f"v{version}: {count:,}" for version, count in p.versions().items()),
    }
    for label, cell in rows.items():
        table.add_row(label, *(cell(phase) for phase in phases))
    console.print(table)
    for phase in phases:
        if phase.swap is not None:
            offsets = ", ".join(f"p{p}@{o if o is not None else '-'}" for p, o in sorted(phase.switch_offsets().items()))
            console.print(f"{phase.name}: v{phase.swap.old_version} -> v{phase.swap.new_version}; offset of the first "
                          f"v{phase.swap.new_version} score per partition of the scores topic: {offsets}",
                          markup=False, highlight=False)
        for violation in phase.violations:
            console.print(f"{phase.name}: VIOLATION {violation}", markup=False, highlight=False)
