"""`fraud bench chaos` and tests/reliability: faults injected into real processes, then an accounting of every transaction.

Each scenario runs on a `ChaosStack` (the embedded Kafka broker, the real
predictor serving a tiny ONNX model, a Feast SQLite online store), publishes
its transactions while real `python -m stream_scorer` workers score them,
injects its fault, waits until every published transaction has an outcome (or
nothing has come out for a while), stops the workers gracefully and reads
everything that came out. The verdict is `account`: by transaction_id, nothing
lost, and no transaction with two outcomes that differ (README "Failure behaviour").

| scenario | the fault |
|---|---|
| kills | the worker is SIGKILLed (with its helper processes) N times; a new one is started each time |
| broker | the broker is stopped gracefully, kept down, started again, while producer and worker run |
| predictor | the predictor is SIGKILLed, kept down, started again |
| feast | the Feast online store's file is overwritten with garbage, then restored; the users are new, so it is read |
| rebalance | a second worker joins the consumer group mid-run, then leaves it |
| poison | Hypothesis-drawn bad records (both content modes) among good ones; the worker must never pause |
| faust-skips | the consumer's fetches lose records at known offsets of every partition, as Faust's own stream did for a partition paused mid-batch |

The bench runs the issue's sizes; the tests the same functions, smaller.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cloudevents.kafka import to_binary
from rich.console import Console
from rich.table import Table

from benchmarks.chaos_stack import ChaosStack, Feed, Outgoing, Run, unreadable
from fraud.events import encode, to_cloudevent
from fraud.settings import Settings
from producers.synthetic import synthetic_transactions

log = logging.getLogger(__name__)

# What a score's copies may differ in: when it was published and how late, measurements of the delivery itself.
MEASUREMENT_FIELDS = frozenset({"scored_at", "latency_ms"})
_DEAD_LETTER = b"dead letter"  # a dead letter's content: only that it is one (see `account`)


# --- the accounting ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Accounting:
    """Outcomes by transaction_id; see `account`."""

    published: int
    scored: int
    dead_lettered: int
    lost: int
    duplicated_identical: int
    duplicated_different: int
    unpublished: int = 0
    lost_ids: tuple[str, ...] = ()  # a few, for the failure message
    different_ids: tuple[str, ...] = ()
    difference: str = ""  # how the copies of the first different id differ
    broken_histories: int = 0  # users whose scored transactions' history counts are not consecutive
    broken_example: str = ""

    @property
    def ok(self) -> bool:
        """Nothing lost, no transaction whose outcomes differ, and every user's history unbroken."""
        return self.lost == 0 and self.duplicated_different == 0 and self.broken_histories == 0

    def describe(self) -> str:
        text = (f"published {self.published:,}, scored {self.scored:,}, dead-lettered {self.dead_lettered:,}, "
                f"lost {self.lost:,}, duplicated {self.duplicated_identical:,} identical / "
                f"{self.duplicated_different:,} different, outcomes of unpublished ids {self.unpublished:,}")
        if self.lost_ids:
            text += f"; lost e.g. {', '.join(self.lost_ids)}"
        if self.different_ids:
            text += f"; different e.g. {', '.join(self.different_ids)}; {self.difference}"
        if self.broken_histories:
            text += f"; {self.broken_histories:,} users' histories broken, e.g. {self.broken_example}"
        return text


def account(published: Iterable[str], scores: Iterable[Mapping[str, Any]],
            dead_letters: Iterable[tuple[str | None, str]]) -> Accounting:
    """Account for every published transaction_id: scored, dead-lettered, lost, duplicated.

    ``published``: the ids the producer reported delivered (a record without a usable
    transaction_id is published under a tracking id). ``scores``: the `data` of every
    score event read. ``dead_letters``: (id, reason) of every dead letter read.

    - scored / dead-lettered: published ids with at least one score / dead letter;
    - lost: published ids with neither (must be 0);
    - duplicated: ids with more than one outcome, counted over every id that came out.
      Identical when every copy has the same content, different otherwise. A score's
      content is every field of its data except ``scored_at`` and ``latency_ms``, which
      measure the delivery itself (when it went out, how late), not the decision; so
      score, decision, threshold, model and every feature value must match. A dead
      letter's content is only that it is one: its reason may name a measurement (how
      far ahead an event_time is). An id both scored and dead-lettered is a duplicate
      with different content;
    - unpublished: ids that came out but were not reported published (sends the
      producer gave up on that Kafka had taken after all); counted nowhere else;
    - broken histories: users whose distinct scored transactions do not carry consecutive
      history counts (k, k+1, ...: each saw all the user's scored transactions before it,
      once). A state read stale, e.g. kept by a worker past a rebalance, repeats a count.
    """
    copies: dict[str | None, list[bytes]] = defaultdict(list)
    kinds: dict[str | None, set[str]] = defaultdict(set)
    scores = list(scores)  # read twice: for the outcomes, then for the histories
    for data in scores:
        content = {name: value for name, value in data.items() if name not in MEASUREMENT_FIELDS}
        transaction_id = data.get("transaction_id")
        copies[transaction_id].append(orjson.dumps(content, option=orjson.OPT_SORT_KEYS))
        kinds[transaction_id].add("score")
    for transaction_id, _reason in dead_letters:
        copies[transaction_id].append(_DEAD_LETTER)
        kinds[transaction_id].add("dead letter")
    wanted = set(published)
    duplicated = {tid for tid, contents in copies.items() if len(contents) > 1}
    different = {tid for tid in duplicated if len(set(copies[tid])) > 1}
    lost = wanted - copies.keys()
    broken = _broken_histories(scores)
    return Accounting(
        published=len(wanted),
        scored=sum(1 for tid in wanted if "score" in kinds.get(tid, ())),
        dead_lettered=sum(1 for tid in wanted if "dead letter" in kinds.get(tid, ())),
        lost=len(lost),
        duplicated_identical=len(duplicated - different),
        duplicated_different=len(different),
        unpublished=len(copies.keys() - wanted),
        lost_ids=tuple(sorted(lost)[:5]),
        different_ids=tuple(sorted(str(tid) for tid in different)[:5]),
        difference=_difference(min(different, key=str), copies[min(different, key=str)]) if different else "",
        broken_histories=len(broken),
        broken_example=broken[0] if broken else "",
    )


def _broken_histories(scores: Iterable[Mapping[str, Any]]) -> list[str]:
    """Per user whose scored transactions' history counts are not consecutive, what they are."""
    counts: dict[str, dict[str, float]] = defaultdict(dict)  # user -> transaction_id -> history_count
    for data in scores:
        count = (data.get("features") or {}).get("history_count")
        if data.get("user_id") is not None and count is not None:
            counts[data["user_id"]][data.get("transaction_id")] = count
    broken = []
    for user, by_transaction in sorted(counts.items()):
        seen = sorted(by_transaction.values())
        if seen != [seen[0] + step for step in range(len(seen))]:
            broken.append(f"{user}: history counts {seen[:12]}")
    return broken


def _difference(transaction_id: str | None, contents: list[bytes]) -> str:
    """What differs between the first two distinct copies of one id's outcome, field by field (features too)."""
    first, second = (_fields(content) for content in list(dict.fromkeys(contents))[:2])
    fields = [f"{name}: {first.get(name)!r} vs {second.get(name)!r}" for name in sorted(first.keys() | second.keys())
              if first.get(name) != second.get(name)]
    return f"{transaction_id} differs in {'; '.join(fields)}"


def _fields(content: bytes) -> dict[str, Any]:
    if content == _DEAD_LETTER:
        return {"outcome": "dead letter"}
    data = orjson.loads(content)
    features = {f"features.{name}": value for name, value in (data.pop("features", None) or {}).items()}
    return {"outcome": "score", **data, **features}


# --- scenario plumbing ------------------------------------------------------------------------
@dataclass(frozen=True)
class ScenarioResult:
    """One scenario's accounting, what was seen on the way, and what broke the contract beyond the accounting."""

    name: str
    accounting: Accounting
    seconds: float
    notes: tuple[str, ...]
    violations: tuple[str, ...]
    log_tails: Mapping[str, str]

    @property
    def ok(self) -> bool:
        return self.accounting.ok and not self.violations

    def summary(self) -> str:
        """The accounting, the violations and what was seen, one per line."""
        return "\n".join([f"{self.name} ({self.seconds:.0f}s): {self.accounting.describe()}",
                          *(f"  VIOLATION: {v}" for v in self.violations), *(f"  seen: {note}" for note in self.notes)])

    def report(self) -> str:
        """Everything a person needs when the scenario failed: the summary, and the end of the workers' logs."""
        lines = [self.summary()]
        for worker, tail in list(self.log_tails.items())[:3]:
            lines += [f"--- {worker} log (last lines) ---", tail]
        return "\n".join(lines)


def good_records(count: int, users: int, seed: int, first_user: int = 0, binary_every: int = 0) -> list[Outgoing]:
    """Valid synthetic transactions of user_<first_user> ..; every ``binary_every``-th in binary content mode."""
    records = []
    for number, transaction in enumerate(synthetic_transactions(count, users=users, seed=seed)):
        if first_user:
            transaction = transaction.model_copy(
                update={"user_id": f"user_{first_user + int(transaction.user_id.removeprefix('user_'))}"})
        if binary_every and number % binary_every == 0:
            message = to_binary(to_cloudevent(transaction, "chaos.good"), data_marshaller=orjson.dumps)
            records.append(Outgoing(transaction.transaction_id, transaction.user_id.encode(), message.value,
                                    list(message.headers.items())))
        else:
            key, value, headers = encode(transaction, "chaos.good")
            records.append(Outgoing(transaction.transaction_id, key, value, headers))
    return records


Script = Callable[[Run, Feed], None]


def play(stack: ChaosStack, name: str, records: Sequence[Outgoing], rate: float, script: Script,
         checks: Callable[[Run, Feed], None] | None = None, head_share: float = 0.2,
         worker_env: dict[str, str] | None = None) -> ScenarioResult:
    """Run one scenario: a worker, the feed, the fault ``script``; wait for every outcome; account.

    ``head_share`` of the records are published at once, while the worker starts; the
    rest at ``rate`` once it is ready, so the fault (after the head is scored) meets a
    worker with work coming in.
    """
    started = time.perf_counter()
    run = Run(stack, name, worker_env=worker_env)
    feed = Feed(run.settings, run.settings.topic_transactions, records, rate, head=int(len(records) * head_share))
    try:
        first = run.start_worker(wait_ready=False)
        run.sampler.start()
        feed.start()
        first.wait_ready()
        feed.go()
        script(run, feed)
        if not feed.wait(timeout_s=stack.patience_s + 120):
            run.violations.append(f"the producer had not finished {stack.patience_s + 120:.0f}s after the fault")
        if not run.wait_for_outcomes(feed.delivered, stack.patience_s):
            run.notes.append(f"gave up waiting: nothing new came out for {stack.patience_s:.0f}s")
        if checks is not None:
            checks(run, feed)
    except Exception as error:  # noqa: BLE001 - a broken scenario still reports what it saw, with the logs
        run.violations.append(f"the scenario itself failed: {type(error).__name__}: {error}")
    finally:
        feed.go()  # never leave the feed's thread waiting
        run.sampler.stop()
        try:
            run.close()
        except Exception as error:  # noqa: BLE001 - e.g. a broker that did not come back: the outcomes read so far count
            run.violations.append(f"could not read the last outcomes: {type(error).__name__}: {error}")
        _observe(run, feed)
    accounting = account(feed.delivered, run.outcomes.scores, run.outcomes.dead_letters)
    if accounting.lost:
        run.notes.append(where_lost(feed, run.outcomes))
    return ScenarioResult(name, accounting, time.perf_counter() - started, tuple(run.notes), tuple(run.violations),
                          run.log_tails())


def where_lost(feed: Feed, outcomes) -> str:
    """The lost records' partitions and offset ranges: contiguous runs point at skipped fetches, scattered ones elsewhere."""
    came_out = {data.get("transaction_id") for data in outcomes.scores} | {tid for tid, _ in outcomes.dead_letters}
    by_partition: dict[int, list[int]] = defaultdict(list)
    for tracking_id in feed.delivered - came_out:
        if tracking_id in feed.positions:
            partition, offset = feed.positions[tracking_id]
            by_partition[partition].append(offset)
    parts = []
    for partition, offsets in sorted(by_partition.items()):
        offsets.sort()
        runs, start = [], offsets[0]
        for previous, current in zip(offsets, offsets[1:], strict=False):
            if current != previous + 1:
                runs.append((start, previous))
                start = current
        runs.append((start, offsets[-1]))
        parts.append(f"p{partition}: " + ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs[:8]))
    return "lost records at (partition: offsets) " + "; ".join(parts)


def _observe(run: Run, feed: Feed) -> None:
    """Notes from the metrics sampled and the feed: what the fault did to the workers."""
    sampler = run.sampler
    paused = f"paused in {sampler.paused_samples} of {sampler.samples} samples"
    run.notes.append(paused + (f" (waiting for {', '.join(sorted(sampler.waited_for))})" if sampler.waited_for else ""))
    run.notes.append(f"{len(run.workers)} worker process(es); redelivered records skipped: "
                     f"{sampler.total('fraud_scorer_redelivered_skipped_total'):,.0f}; not delivered and read again: "
                     f"{sampler.total('fraud_scorer_skipped_read_again_total'):,.0f}; unexpected errors: "
                     f"{sampler.total('fraud_scorer_unexpected_errors_total'):,.0f}")
    failures = {key.split(":", 1)[1]: value for key, value in sampler.merged().items()
                if key.startswith("fraud_scorer_dependency_failures_total:") and value}
    if failures:
        run.notes.append("dependency failures (each retried): "
                         + ", ".join(f"{name} {count:,.0f}" for name, count in sorted(failures.items())))
    if run.outcomes.unreadable_scores:
        run.violations.append(f"{run.outcomes.unreadable_scores} score events without a readable transaction_id")
    if feed.failed:
        run.notes.append(f"{len(feed.failed):,} sends the producer reported failed (not published), "
                         f"e.g. {next(iter(feed.failed.values()))}")
    if feed.error:
        run.violations.append(f"the producer stopped: {feed.error}")


def _after_scores(run: Run, feed: Feed, share: float) -> None:
    """Wait until the workers are warmed up and have published scores for ``share`` of the records.

    Warmed up (`fraud_scorer_ready`): the fault is meant for a worker at work, not one still
    opening its Feast store and starting its push process.
    """
    target = int(len(feed.records) * share)
    run.wait_until(lambda: run.all_ready() and run.scored_by_live_workers() >= target, run.stack.patience_s + 60,
                   f"{target:,} scores from ready workers")


def _paused_for(dependency: str) -> Callable[[Run, Feed], None]:
    """A check: consumption paused for ``dependency`` while it was down (else, were scores made up?)."""
    def check(run: Run, feed: Feed) -> None:
        if dependency not in run.sampler.waited_for:
            run.violations.append(f"the worker never paused for {dependency} while it was down: "
                                  f"no fault seen, or scores made without it")
    return check


def _pause_noted(dependency: str) -> Callable[[Run, Feed], None]:
    """A note, not a violation, on whether consumption paused for ``dependency``.

    For Feast: the file is overwritten in place, and the worker's open SQLite connection
    (WAL mode) may keep answering from pages it has cached, so a read need not fail at
    all; a score made from such a read is a real one. The pause itself is proven by the
    unit test of transient Feast faults; what this scenario proves is the accounting.
    """
    def check(run: Run, feed: Feed) -> None:
        seen = dependency in run.sampler.waited_for
        run.notes.append(f"consumption paused for {dependency}: {'yes' if seen else 'no (no read failed)'}")
    return check


# --- the scenarios ----------------------------------------------------------------------------
def worker_kills(stack: ChaosStack, events: int = 100_000, kills: int = 5, rate: float = 2_000.0) -> ScenarioResult:
    """SIGKILL the worker ``kills`` times, each time after it published its share of scores; start a new one."""
    quota = events // (kills + 2)

    def script(run: Run, feed: Feed) -> None:
        for _ in range(kills):
            worker = run.live[-1]
            run.wait_until(lambda worker=worker: run.scores_out(worker) >= quota, stack.patience_s + 60,
                           f"{quota:,} scores from {worker.files.name}")
            run.sleep(run.random.uniform(0.0, 0.5))  # somewhere inside a batch, not just after one
            run.kill_worker(worker)
            run.start_worker(wait_ready=False)
        run.notes.append(f"{kills} workers SIGKILLed, each after publishing {quota:,} scores")

    return play(stack, "kills", good_records(events, stack.known_users, seed=11), rate, script, head_share=1 / (kills + 2))


def broker_outage(stack: ChaosStack, events: int = 100_000, outage_s: float = 30.0, rate: float = 2_000.0,
                  fault_at: float = 0.1) -> ScenarioResult:
    """Stop the broker (gracefully) while the producer and the worker run; start it again ``outage_s`` later.

    The fault comes once the worker has scored ``fault_at`` of the events; ``rate`` must keep
    the producer going past it (it buffers and retries while the broker is away).
    """
    def script(run: Run, feed: Feed) -> None:
        _after_scores(run, feed, fault_at)
        began = time.monotonic()
        stack.broker.stop()
        run.sleep(outage_s)
        stack.broker.start()
        run.notes.append(f"broker away for {time.monotonic() - began:.1f}s (stopping, {outage_s:g}s down, starting); "
                         f"{feed.offered - feed.head:,} records offered at {rate:g}/s by then")

    return play(stack, "broker", good_records(events, stack.known_users, seed=12), rate, script)


def predictor_outage(stack: ChaosStack, events: int = 100_000, outage_s: float = 60.0, rate: float = 2_000.0,
                     fault_at: float = 0.1) -> ScenarioResult:
    """SIGKILL the predictor once the worker has scored ``fault_at`` of the events; start it again ``outage_s`` later.

    It is down for ``outage_s`` plus the time it takes to start and load the model.
    """
    def script(run: Run, feed: Feed) -> None:
        _after_scores(run, feed, fault_at)
        began = time.monotonic()
        stack.predictor.kill()
        run.sleep(outage_s)
        stack.predictor.start()
        stack.predictor.wait_ready()
        run.notes.append(f"predictor away for {time.monotonic() - began:.1f}s ({outage_s:g}s down, then starting)")

    return play(stack, "predictor", good_records(events, stack.known_users, seed=13), rate, script,
                checks=_paused_for("predictor"))


def feast_outage(stack: ChaosStack, events: int = 100_000, outage_s: float = 30.0, rate: float = 2_000.0,
                 fault_at: float = 0.1) -> ScenarioResult:
    """Make the Feast online store unreadable for ``outage_s``; every user is new, so the worker must read it."""
    def script(run: Run, feed: Feed) -> None:
        _after_scores(run, feed, fault_at)
        with unreadable(stack.online_store):
            run.sleep(outage_s)
        run.notes.append(f"Feast online store unreadable for {outage_s:g}s")

    # As many users as events, none of them in the store: most batches bring users the worker has not looked up yet.
    records = good_records(events, users=events, seed=14, first_user=10_000_000)
    return play(stack, "feast", records, rate, script, checks=_pause_noted("feast"))


def rebalance(stack: ChaosStack, events: int = 100_000, rate: float = 2_000.0, fault_at: float = 0.1) -> ScenarioResult:
    """A second worker joins the consumer group mid-run, scores its share, and leaves (SIGTERM) while events still flow."""
    def script(run: Run, feed: Feed) -> None:
        _after_scores(run, feed, fault_at)
        second = run.start_worker()
        if not run.wait_until(lambda: run.scores_out(second) > 0, stack.patience_s, fail=False):
            run.notes.append(f"{second.files.name} scored nothing before it left")
        if second in run.live:
            run.stop_worker(second)
        if feed.offered >= len(feed.records):
            run.notes.append("the producer had finished before the second worker left: rate too high for the rebalance")

    return play(stack, "rebalance", good_records(events, stack.known_users, seed=15), rate, script)


def faust_skips(stack: ChaosStack, events: int = 10_000, rate: float = 2_000.0) -> ScenarioResult:
    """Fetched records lost at known offsets of every partition (benchmarks/faults/faust_skips): none is lost."""
    shim = Path(__file__).parent / "faults" / "faust_skips"

    def checks(run: Run, feed: Feed) -> None:
        read_again = run.sampler.total("fraud_scorer_skipped_read_again_total")
        run.notes.append(f"{read_again:,.0f} records the consumer did not deliver were read from the broker and scored")
        if not read_again:
            run.violations.append("no record was read again: the fault did not reach the worker")

    return play(stack, "faust-skips", good_records(events, stack.known_users, seed=17), rate, lambda run, feed: None,
                checks=checks, worker_env={"PYTHONPATH": str(shim)})


def poison(stack: ChaosStack, events: int = 10_000, rate: float = 1_000.0) -> ScenarioResult:
    """``events`` Hypothesis-drawn records among as many good ones: each scored or dead-lettered, and no pause."""
    from benchmarks.poison import poison_records

    good = good_records(events, stack.known_users, seed=16, binary_every=3)
    bad = poison_records(events, users=stack.known_users, seed=16)
    records = [record for pair in zip(good, bad, strict=True) for record in pair]

    def checks(run: Run, feed: Feed) -> None:
        if run.sampler.paused_samples:
            run.violations.append(f"consumption paused (waiting for {', '.join(sorted(run.sampler.waited_for))}) "
                                  "during a run whose only trouble was bad records")
        unexplained = sum(1 for _, reason in run.outcomes.dead_letters if not reason)
        if unexplained:
            run.violations.append(f"{unexplained} dead letters without a {'fraud-dlq-reason'} header")
        refused = {tid for tid, _ in run.outcomes.dead_letters} & {record.tracking_id for record in good}
        if refused:
            run.violations.append(f"{len(refused)} valid transactions dead-lettered, e.g. {sorted(refused)[:3]}")

    return play(stack, "poison", records, rate, lambda run, feed: None, checks=checks)


SCENARIOS: dict[str, Callable[[ChaosStack, int], ScenarioResult]] = {
    "kills": lambda stack, events: worker_kills(stack, events, kills=5),
    "broker": lambda stack, events: broker_outage(stack, events, outage_s=30.0),
    "predictor": lambda stack, events: predictor_outage(stack, events, outage_s=60.0),
    "feast": lambda stack, events: feast_outage(stack, events, outage_s=30.0),
    "rebalance": lambda stack, events: rebalance(stack, events),
    "poison": lambda stack, events: poison(stack, max(100, events // 10)),
    "faust-skips": lambda stack, events: faust_skips(stack, events),
}


def run(settings: Settings, scenarios: Sequence[str] = tuple(SCENARIOS), events: int = 100_000,
        console: Console | None = None) -> list[ScenarioResult]:
    """Run the scenarios at the issue's sizes (``events`` each; poison a tenth) on one scratch stack; print the table."""
    console = console or Console()
    results = []
    with tempfile.TemporaryDirectory(prefix="fraud-bench-chaos-") as scratch:
        console.log("starting a scratch stack: Kafka broker, predictor (tiny ONNX model), Feast store")
        with ChaosStack(settings, Path(scratch)) as stack:
            for name in scenarios:
                console.log(f"scenario {name} ...")
                began = time.perf_counter()
                try:
                    result = SCENARIOS[name](stack, events)
                except Exception as error:  # noqa: BLE001 - e.g. Hypothesis not installed: the other scenarios still run
                    result = ScenarioResult(name, account([], [], []), time.perf_counter() - began, (),
                                            (f"could not run: {type(error).__name__}: {error}",), {})
                console.log(f"scenario {name}: {result.accounting.describe()} in {result.seconds:,.0f}s")
                if not result.ok:
                    console.print(result.report(), markup=False, highlight=False)
                results.append(result)
    _print(results, console)
    return results


def _print(results: Sequence[ScenarioResult], console: Console) -> None:
    table = Table(title="chaos: every published transaction accounted for by transaction_id (lost must be 0)")
    for column in ("scenario", "published", "scored", "dead-lettered", "lost", "duplicated (identical)",
                   "duplicated (different)", "seconds"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for result in results:
        a = result.accounting
        table.add_row(result.name + ("" if result.ok else " [red](FAILED)[/]"), f"{a.published:,}", f"{a.scored:,}",
                      f"{a.dead_lettered:,}", f"{a.lost:,}", f"{a.duplicated_identical:,}", f"{a.duplicated_different:,}",
                      f"{result.seconds:,.0f}")
    console.print(table)
    for result in results:
        for line in (*result.violations, *result.notes):
            console.print(f"{result.name}: {line}", markup=False, highlight=False)
