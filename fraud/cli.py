"""The `fraud` command: one entry point for the local stack, producers, consumers and benchmarks.

Every subcommand has ``--help``. Mistakes (a bad option, a bad setting, a
service that does not answer) end in one line on stderr and a non-zero exit
code, never in a traceback; ``--verbose`` shows the details.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fraud.errors import FraudError
from fraud.settings import Settings, load_settings

if TYPE_CHECKING:
    from producers.publisher import DeliveryReport
    from training_pipeline.retrain import RunOutcome

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Real-time fraud scoring on Kafka: local stack, producers, consumers, benchmarks.")
stack_app = typer.Typer(no_args_is_help=True, help="Start, stop and inspect the local services (Kafka broker, predictor, stream worker).")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks, each measured beside its baseline in the same run.")
data_app = typer.Typer(no_args_is_help=True, help="Synthetic users and transactions.")
pipeline_app = typer.Typer(no_args_is_help=True, help="The training pipeline, or one of its steps.")
app.add_typer(stack_app, name="stack")
app.add_typer(data_app, name="data")
app.add_typer(pipeline_app, name="pipeline")
models_app = typer.Typer(no_args_is_help=True, help="The model registry: registered versions and which is production.")
app.add_typer(models_app, name="models")
app.add_typer(bench_app, name="bench")

out = Console(soft_wrap=True)
log = logging.getLogger("fraud")


@app.callback()
def _configure(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    """Real-time fraud scoring on Kafka."""
    handler = RichHandler(console=Console(stderr=True, width=None if sys.stderr.isatty() else 200),  # wide when not
                          show_path=False, rich_tracebacks=verbose)  # a terminal: one line per log line in files
    if not verbose:
        # py4j logs its lost connections to a stopped Spark JVM on the root logger, with a traceback, when the
        # collector frees a Java object late; no level of the "py4j" logger reaches those.
        handler.addFilter(lambda record: f"{os.sep}py4j{os.sep}" not in record.pathname)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", handlers=[handler],
                        force=True)
    # The Kafka clients log every reconnect at WARNING; our own messages say what matters.
    for noisy in ("kafka", "aiokafka", "py4j", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.CRITICAL)


def _print(text: str) -> None:
    out.print(text, highlight=False, markup=False)


def _show(statuses: dict[str, str]) -> None:
    for service, status in statuses.items():
        out.print(f"{service:<10} {status}")


# --- stack ------------------------------------------------------------------------------------
@stack_app.command("up")
def stack_up() -> None:
    """Start the local services (reusing any already running) and create the topics."""
    from fraud.local_stack import stack_up as start_stack

    _show(start_stack(load_settings()))


@stack_app.command("down")
def stack_down() -> None:
    """Stop the services `fraud stack up` started: gracefully, then by force after a timeout."""
    from fraud.local_stack import stack_down as stop_stack

    _show(stop_stack(load_settings()))


@stack_app.command("status")
def stack_status() -> None:
    """Show each local service and how many events each topic holds."""
    from fraud.local_stack import stack_status as read_status
    from fraud.topics import topic_event_counts

    settings = load_settings()
    statuses = read_status(settings)
    _show(statuses)
    if statuses["kafka"].startswith("running"):
        for topic, events in topic_event_counts(settings).items():
            out.print(f"  topic {topic:<20} {events:>10,} events")


# --- data -------------------------------------------------------------------------------------
@data_app.command("generate")
def data_generate(
    users: Annotated[int, typer.Option(min=1, help="Number of users (user_0 ... user_<N-1>).")] = 10_000,
    days: Annotated[int, typer.Option(min=1, help="Length of the time window in days.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")] = 0,
    start: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="First day of the window (UTC).")] = datetime(2026, 1, 1),
    scenario: Annotated[str, typer.Option(help="baseline, or drift: the fraud pattern changes from --drift-day on.")] = "baseline",
    drift_day: Annotated[int | None, typer.Option(min=0, help="With --scenario drift: the day the pattern changes.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder. [default: <data dir>/raw]")] = None,
) -> None:
    """Write users.parquet and transactions.parquet (with a ground-truth `fraud` column)."""
    import time

    from fraud.datagen import GenerationSpec, generate

    if scenario not in ("baseline", "drift"):
        raise typer.BadParameter(f"{scenario!r} is not one of baseline, drift", param_hint="'--scenario'")
    try:
        spec = GenerationSpec(users=users, days=days, seed=seed, start=start.date(), scenario=scenario, drift_day=drift_day)  # type: ignore[arg-type]
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    out_dir = out or load_settings().raw_dir
    started = time.perf_counter()
    with Console(stderr=True).status(f"generating {users:,} users over {days} days"):
        files = generate(spec, out_dir)
    _print(f"{files.transactions:,} transactions of {files.users:,} users, {files.frauds:,} fraudulent "
           f"({files.fraud_rate:.2%}), in {time.perf_counter() - started:.1f}s -> {out_dir}")


# --- pipeline ---------------------------------------------------------------------------------
@pipeline_app.command("prep")
def pipeline_prep(
    raw: Annotated[str | None, typer.Option(help="Folder or s3a:// URI with users.parquet and transactions.parquet. [default: <data dir>/raw]")] = None,
    out: Annotated[str | None, typer.Option(help="Output folder or s3a:// URI. [default: <data dir>/features]")] = None,
) -> None:
    """Spark: point-in-time features and user profiles, split by time into profile/train/valid/test."""
    from training_pipeline.prep import prepare

    settings = load_settings(raw_uri=raw, features_uri=out)
    location = settings.raw_location
    if "://" not in location and not (Path(location) / "transactions.parquet").exists():
        raise FraudError(f"no transactions.parquet in {location}; run `fraud data generate` first")
    result = prepare(settings)
    _print(f"features: {result.features_path}\nprofiles: {result.profile_path}\nrows per split: "
           + ", ".join(f"{name} {count:,}" for name, count in result.rows_per_split.items()))


@pipeline_app.command("features")
def pipeline_features() -> None:
    """Feast: apply the feature repo and materialize the prepared features into the online store."""
    import json

    from fraud.feature_store import apply_and_materialize

    settings = load_settings()
    manifest = Path(settings.features_location) / "manifest.json"
    if not manifest.exists():
        raise FraudError(f"no {manifest}; run `fraud pipeline prep` first (local feature locations only)")
    window = json.loads(manifest.read_text())["split"]
    result = apply_and_materialize(settings, datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"]))
    _print(f"applied {', '.join(result.applied)}; online store holds features up to {result.end:%Y-%m-%d %H:%M}")


@pipeline_app.command("run")
def pipeline_run(
    users: Annotated[int | None, typer.Option(min=100, help="Users to generate when the data dir has no data. [default: FRAUD_PIPELINE_USERS]")] = None,
) -> None:
    """Run the whole training pipeline locally (kfp.local, one process per step) and say what it decided."""
    _run_pipeline(load_settings(), users)


def _run_pipeline(settings: Settings, users: int | None) -> RunOutcome:
    """Run the pipeline locally and print what it did (`fraud pipeline run`, `fraud retrain` without KFP)."""
    from training_pipeline.retrain import run_local
    from training_pipeline.steps import pipeline_dir

    _print("running the training pipeline locally (prep, features, training data, train, evaluate, register, deploy); "
           f"its log: {pipeline_dir(settings) / 'runs'}")
    try:
        outcome = run_local(settings, users)
    except FraudError as error:
        log_tail = _log_tail(str(error).rsplit("full log: ", 1)[-1])
        if log_tail:
            print(log_tail, file=sys.stderr)
        raise
    _print("step timings: " + ", ".join(f"{step} {seconds:.1f}s" for step, seconds in outcome.step_seconds.items())
           + f" (total {sum(outcome.step_seconds.values()):.1f}s)")
    _print(outcome.decision)
    _print(outcome.deployed)
    _print(f"report: {settings.data_dir / 'reports' / 'latest.html'}")
    return outcome


def _log_tail(path: str, lines: int = 25) -> str:
    log_path = Path(path)
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:]) if log_path.is_file() else ""


@app.command()
def retrain(
    reason: Annotated[str, typer.Option(help="Why (recorded in data/pipeline/retrain_requests.jsonl and the KFP run name).")] = "by hand",
    request: Annotated[bool, typer.Option("--request", help="Publish a retraining request to fraud-retrain instead of running.")] = False,
    listen: Annotated[bool, typer.Option("--listen", help="Run the pipeline for each request on fraud-retrain (one at a time).")] = False,
    users: Annotated[int | None, typer.Option(min=100, help="Users to generate when the data dir has no data.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="With FRAUD_KFP_HOST: wait for the KFP run to finish and say how it ended.")] = False,
    timeout: Annotated[float | None, typer.Option(min=1, help="With --wait: give up waiting after this many seconds. [default: FRAUD_RETRAIN_MAX_RUN_S]")] = None,
) -> None:
    """Retrain now (locally with kfp.local, or a run on KFP with FRAUD_KFP_HOST), ask for it (--request), or serve requests (--listen)."""
    from training_pipeline.retrain import Journal, by_hand, journal_path, listen as serve_requests, request_runner

    settings = load_settings()
    if request and listen:
        raise FraudError("--request publishes a request and --listen serves them: choose one")
    if request:
        _publish_retrain_request(settings, reason)
    elif listen:
        serve_requests(settings, request_runner(settings, users))
    else:
        journal, asked = Journal(journal_path(settings)), by_hand(reason)
        try:
            outcome = _retrain_on_kfp(settings, reason, users, wait, timeout) if settings.kfp_host else _run_pipeline(settings, users).line()
        except FraudError as error:
            journal.append(asked, "by hand", f"failed: {error}")
            raise
        journal.append(asked, "by hand", outcome)


def _retrain_on_kfp(settings: Settings, reason: str, users: int | None, wait: bool, timeout_s: float | None) -> str:
    """Submit the compiled pipeline to KFP, print the run's URL, and with ``wait`` its outcome; the journal's line."""
    from training_pipeline.retrain import KfpRuns, failure_line

    runs = KfpRuns(settings)
    run = runs.submit(reason, users)
    _print(f"submitted KFP run {run.run_id} (image {settings.pipeline_image}, experiment {settings.kfp_experiment}): {run.url}")
    if not wait:
        return run.line()
    with out.status(f"waiting for KFP run {run.run_id} to finish"):
        run = runs.wait(run, timeout_s or settings.retrain_max_run_s)
    if run.state != "SUCCEEDED":
        raise FraudError(failure_line(run))
    _print(run.line())
    return run.line()


def _publish_retrain_request(settings: Settings, reason: str) -> None:
    from fraud.events import encode
    from producers.publisher import make_producer
    from training_pipeline.retrain import by_hand

    key, value, headers = encode(by_hand(reason), settings.event_source)
    producer = make_producer(settings)
    try:
        producer.send(settings.topic_retrain, key=key, value=value, headers=headers).get(timeout=30)
    except Exception as error:  # noqa: BLE001 - kafka-python's errors and its timeout
        raise FraudError(f"could not publish the request to {settings.topic_retrain}: {error}") from error
    finally:
        producer.close()
    _print(f"retraining requested on {settings.topic_retrain} ({reason}); `fraud stack up` runs a listener that starts it")


@pipeline_app.command("compile")
def pipeline_compile(
    output: Annotated[Path | None, typer.Option(help="Where to write the YAML. [default: training_pipeline/pipeline.yaml]")] = None,
) -> None:
    """Write the KFP v2 pipeline YAML (for Kubeflow Pipelines / OpenShift AI Data Science Pipelines)."""
    from training_pipeline.pipeline import COMPILED, compile_pipeline

    path = compile_pipeline(load_settings().pipeline_image, output or COMPILED)
    _print(f"wrote {path}")


# --- models -----------------------------------------------------------------------------------
@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json", help="JSON, with artifact URIs.")] = False) -> None:
    """Every registered model and version; * marks production."""
    import json
    from dataclasses import asdict

    from fraud.registry import open_registry

    registry = open_registry(load_settings())
    versions = [v for name in registry.models() for v in registry.versions(name)]
    if as_json:
        print(json.dumps([asdict(v) for v in versions], indent=2))
        return
    if not versions:
        _print("no models registered yet; run `fraud pipeline run`")
    for v in versions:
        pr_auc = v.metadata.get("test_pr_auc")
        _print(f"{'*' if v.production else ' '} {v.name} v{v.version}  {v.model_format}  registered {v.registered_at[:19]}"
               + (f"  test PR-AUC {pr_auc:.4f}" if isinstance(pr_auc, float) else "") + f"  {v.uri}")


@models_app.command("show")
def models_show(
    version: Annotated[str | None, typer.Argument(help="Version to show. [default: production]")] = None,
    name: Annotated[str | None, typer.Option(help="Registered model name. [default: FRAUD_MODEL_NAME]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON.")] = False,
) -> None:
    """One version in full: URI, format, metrics, threshold, feature names, training window."""
    import json
    from dataclasses import asdict

    from fraud.registry import open_registry

    settings = load_settings()
    registry = open_registry(settings)
    name = name or settings.model_name
    versions = registry.versions(name)
    chosen = next((v for v in versions if v.version == version), None) if version else registry.production(name)
    if chosen is None:
        known = ", ".join(v.version for v in versions) or "none"
        raise FraudError(f"model {name!r} has no version {version or '(production)'}; versions: {known}")
    if as_json:
        print(json.dumps(asdict(chosen), indent=2))
        return
    _print(json.dumps(asdict(chosen), indent=2))


# --- produce ----------------------------------------------------------------------------------
@app.command()
def produce(
    count: Annotated[int, typer.Option(min=1, help="How many transactions to publish.")] = 10_000,
    rate: Annotated[float | None, typer.Option(help="Events per second; 0 = as fast as possible. [default: 0]")] = None,
    dataset: Annotated[Path | None, typer.Option(exists=True, help="Parquet/CSV/JSON Lines file (or Parquet folder) to replay instead of the synthetic stream.")] = None,
    users: Annotated[int, typer.Option(min=1, help="Synthetic stream: number of users.")] = 1000,
    seed: Annotated[int | None, typer.Option(help="Synthetic stream: random seed (repeatable runs).")] = None,
    topic: Annotated[str | None, typer.Option(help="Topic to publish to. [default: transactions]")] = None,
    with_labels: Annotated[bool, typer.Option("--labels", help=(
        "Also publish each transaction's label to fraud-labels when it is due: ground truth of the synthetic stream "
        "or the dataset's is_fraud (or fraud) column, delays from FRAUD_LABEL_*, compressed by FRAUD_LABEL_TIME_SCALE."))] = False,
    labels_wait_s: Annotated[float | None, typer.Option(min=0, help=(
        "With --labels: wait at most this long after the transactions for labels still due. [default: until all are out]"))] = None,
) -> None:
    """Publish transactions (keyed by user_id, acks=all) and report delivered and failed counts."""
    from producers.labels import labelled, publish_with_labels
    from producers.publisher import publish
    from producers.sources import DatasetSource, SyntheticSource

    settings = load_settings(produce_rate=rate)
    source = DatasetSource(dataset, limit=count) if dataset else SyntheticSource(count, users=users, seed=seed)
    source = labelled(source, settings, seed) if with_labels else source
    topic = topic or settings.topic_transactions
    with _progress() as bar:
        progress = _Advance(bar, bar.add_task(f"publishing to {topic}", total=count))
        if with_labels:
            label_progress = _Advance(bar, bar.add_task(f"labels to {settings.topic_labels}", total=None))
            report, label_report = publish_with_labels(source, settings, topic, labels_wait_s, progress, label_progress)
        else:
            report, label_report = publish(source, settings, topic=topic, progress=progress), None
    out.print(f"delivered {report.delivered:,}  failed {report.failed:,}  rejected {report.rejected:,}  "
              f"in {report.seconds:.1f}s ({report.events_per_second:,.0f} events/s) to {topic}")
    if label_report is not None:
        _print(label_report.summary(settings.topic_labels))
    _fail_on(report)
    if label_report is not None:
        _fail_on(label_report.delivery, what="label ")


def _fail_on(report: DeliveryReport, what: str = "") -> None:
    """One line naming the first failed deliveries and rejected rows, if any."""
    if report.failed or report.rejected:
        reasons = "; ".join(report.errors)
        raise FraudError(f"{report.failed} {what}deliveries failed, {report.rejected} rows rejected" + (f": {reasons}" if reasons else ""))


@app.command()
def labels(
    dataset: Annotated[Path, typer.Option(help=(
        "Outcomes (Parquet/CSV/JSON Lines with transaction_id, user_id, is_fraud[, source, reported_at]), or a "
        "generated dataset whose `fraud` column is the ground truth: then labels get realistic delays."))],
    seed: Annotated[int, typer.Option(help="Ground truth: random seed of the delays and of which legit ones are cleared.")] = 0,
) -> None:
    """Publish confirmed outcomes (fraud.label.v1) to fraud-labels now, for the monitor and for retraining."""
    from producers.labels import check_labels_file, publish_outcomes

    settings = load_settings()
    check_labels_file(dataset)
    with _progress() as bar:
        report = publish_outcomes(dataset, settings, seed, _Advance(bar, bar.add_task(f"publishing to {settings.topic_labels}", total=None)))
    out.print(f"delivered {report.delivered:,}  failed {report.failed:,}  rejected {report.rejected:,}  "
              f"in {report.seconds:.1f}s to {settings.topic_labels}")
    _fail_on(report)


# --- scores -----------------------------------------------------------------------------------
@app.command()
def scores(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep waiting for new scores.")] = False,
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Start at the oldest score, not the newest.")] = False,
    max_records: Annotated[int | None, typer.Option("--max", min=1, help="Stop after N scores.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    topic: Annotated[str | None, typer.Option(help="Topic to read. [default: fraud-scores]")] = None,
    idle_timeout: Annotated[float, typer.Option(min=0.1, help="Without --follow: stop after this many idle seconds.")] = 5.0,
) -> None:
    """Print score events from the fraud-scores topic."""
    from fraud.scores_reader import read_scores

    settings = load_settings()
    for record in read_scores(settings, topic, from_beginning, follow, max_records, idle_timeout):
        if record.score is None:
            log.warning("partition %d offset %d is not a score event: %s", record.partition, record.offset, record.error)
        elif as_json:
            print(record.score.model_dump_json(), flush=True)
        else:
            s = record.score
            out.print(f"{s.event_time:%Y-%m-%d %H:%M:%S} {s.user_id:<12} {s.transaction_id:<28} "
                      f"score={s.score:.4f} {s.decision:<5} model={s.model_name}:{s.model_version}")


# --- worker -----------------------------------------------------------------------------------
@app.command()
def worker(
    loglevel: Annotated[str, typer.Option(help="Faust log level: debug, info, warning, error.")] = "info",
) -> None:
    """Run one stream worker in the foreground (Ctrl-C stops it after committing). `fraud stack up` starts one in the background."""
    from stream_scorer.worker import run_worker

    if loglevel not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter(f"{loglevel!r} is not one of debug, info, warning, error", param_hint="'--loglevel'")
    run_worker(load_settings(), loglevel)


# --- monitor ----------------------------------------------------------------------------------
@app.command()
def monitor(
    watch: Annotated[bool, typer.Option("--watch", help="Show the running monitor's figures live instead of running one.")] = False,
) -> None:
    """Live quality and drift (scores joined with labels, PSI against the training reference); requests retraining."""
    settings = load_settings()
    if not watch:
        from monitor.worker import run_monitor

        run_monitor(settings)
        return
    from fraud.monitor_view import watch_monitor

    watch_monitor(settings, out)


# --- demo -------------------------------------------------------------------------------------
@app.command()
def demo(
    users: Annotated[int | None, typer.Option(min=100, help="Users to generate and train on. [default: 50,000; drift: 10,000]")] = None,
    days: Annotated[int, typer.Option(min=2, help="Days of history before the replayed day.")] = 30,
    rate: Annotated[float, typer.Option(min=0, help="Replay speed in events/s; 0 = as fast as possible.")] = 0.0,
    retrain: Annotated[bool, typer.Option("--retrain", help="Generate and train again even if a demo model exists.")] = False,
    scenario: Annotated[str, typer.Option(help=(
        "baseline: replay one day and summarise its scores. drift: the learning loop on a fraud pattern that changes "
        "(its own stack under data/drift; --users default 10,000, --rate default 200)."))] = "baseline",
) -> None:
    """The whole story: stack up, generate data, train and deploy, replay a day through Kafka, summarise the scores."""
    import time

    if scenario not in ("baseline", "drift"):
        raise typer.BadParameter(f"{scenario!r} is not one of baseline, drift", param_hint="'--scenario'")
    if scenario == "drift":
        _drift_demo(users, rate)
        return
    users = users or 50_000

    from fraud import demo as story
    from fraud.local_stack import stack_up as start_stack
    from fraud.registry import open_registry

    settings = load_settings()
    began = time.perf_counter()
    out.print("[bold]1. Local stack[/] (Kafka, predictor, stream worker, monitor, retrain listener)")
    _show(start_stack(settings))
    fresh = retrain or not story.replay_path(settings).exists() or open_registry(settings).production(settings.model_name) is None
    if fresh:
        out.print(f"[bold]2. Data[/]: {users:,} users, {days} days of history and one more day to replay")
        data = story.generate_demo_data(settings, users, days)
        _print(f"   history {data.history}; replay {data.replay_count:,} transactions from {data.replay}")
        out.print("[bold]3. Training pipeline[/] (Spark prep, Feast, Keras -> ONNX, evaluate, register, deploy)")
        pipeline_run(users=users)
    else:
        out.print("[bold]2-3. Data and model[/]: reusing the demo's data and production model (--retrain to redo)")
    out.print("[bold]4. Worker state[/]: seeding each user's history into the worker's table")
    _print(f"   {story.reseed_worker(settings):,} users' history recovered by the worker")

    out.print(f"[bold]5. Replay[/] of the last day through {settings.topic_transactions} -> worker -> {settings.topic_scores}")
    path = story.replay_path(settings)
    total = _parquet_rows(path)
    with _progress() as bar:
        published = bar.add_task(f"published to {settings.topic_transactions}", total=total)
        scored = bar.add_task(f"scores read from {settings.topic_scores}", total=total)
        result = story.replay_and_watch(settings, path, rate, _Advance(bar, published), lambda n: bar.advance(scored, n))
    _demo_summary(settings, result, time.perf_counter() - began)


def _drift_demo(users: int | None, rate: float) -> None:
    """`fraud demo --scenario drift`: run the story and report its figures."""
    from rich.table import Table

    from fraud.drift_story import DriftPlan, run_story

    defaults = DriftPlan()
    plan = DriftPlan(users=users or defaults.users, rate=rate or defaults.rate)
    result = run_story(load_settings(), plan, out)
    watch = result.watch
    table = Table(title="PR-AUC over every scored transaction (full ground truth)")
    for column in ("phase", "scored", "frauds", "PR-AUC", "recall at the served threshold"):
        table.add_column(column, justify="right")
    for phase in result.phases:
        table.add_row(phase.name, f"{phase.events:,}", f"{phase.frauds:,}",
                      "n/a" if phase.pr_auc is None else f"{phase.pr_auc:.3f}", "n/a" if phase.recall is None else f"{phase.recall:.3f}")
    out.print(table)
    seen = result.seen
    since = lambda a, b: "n/a" if a is None or b is None else f"{(b - a).total_seconds():.0f} s"  # noqa: E731
    _print(f"drift onset -> retraining requested: {since(seen.onset, seen.requested)}\n"
           f"retraining requested -> v{watch.new_version or '?'} serving: {since(seen.requested, seen.serving)}\n"
           f"recovery: PR-AUC after / before the drift = "
           + ("n/a" if result.recovered is None else f"{result.recovered:.2f} (the target is at least 0.90)")
           + f"\nchart: {result.chart}\nthe story took {result.seconds / 60:.1f} min; its stack is stopped, its files are "
           f"under {load_settings().data_dir / 'drift'}")
    if watch.new_version is None:
        raise FraudError("no new model served during the stream: see data/drift/run/monitor.log and retrainer.log")


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _demo_summary(settings: Settings, result, seconds: float) -> None:
    from rich.table import Table

    from fraud import demo as story

    counts = result.decisions()
    table = Table(title=f"{len(result.scores):,} transactions scored by model {result.scores[0].model_name} "
                        f"v{result.scores[0].model_version} (threshold {result.scores[0].threshold:.3f})")
    for column in ("decision", "actually fraud", "actually legit", "total"):
        table.add_column(column, justify="right")
    for decision in ("fraud", "legit"):
        fraud, legit = counts.get((decision, True), 0), counts.get((decision, False), 0)
        table.add_row(decision, f"{fraud:,}", f"{legit:,}", f"{fraud + legit:,}")
    out.print(table)
    top = Table(title="Top-scored transactions")
    for column in ("transaction", "user", "amount", "km from home", "score", "actually"):
        top.add_column(column)
    for s in result.top(5):
        top.add_row(s.transaction_id, s.user_id, f"{s.features['amount']:,.2f}", f"{s.features['distance_from_home']:,.0f}",
                    f"{s.score:.4f}", "fraud" if result.labels.get(s.transaction_id) else "legit")
    out.print(top)
    _print(f"throughput: {result.events_per_second:,.0f} events/s end to end ({len(result.scores):,} scores in "
           f"{result.seconds:.1f}s, publishing as fast as it could, so latency includes the queue)\n"
           f"latency from entering Kafka to score published: p50 {result.latency_ms(0.5):,.0f} ms, "
           f"p99 {result.latency_ms(0.99):,.0f} ms\n"
           f"the whole demo took {seconds / 60:.1f} min")
    host, metrics = f"{settings.predictor_host}:{settings.predictor_port}", f"{settings.scorer_metrics_host}:{settings.scorer_metrics_port}"
    s = result.top(1)[0]
    row = ", ".join(f"{s.features[name]:.6g}" for name in s.features)
    _print("Try next:\n"
           f"  uv run fraud scores --from-beginning --max 5          # read score events\n"
           f"  uv run fraud produce --count 20000                   # publish more; the worker scores them\n"
           f"  uv run fraud stack status                            # services, topics, worker counters\n"
           f"  uv run fraud labels --dataset {story.replay_path(settings)}   # the day's outcomes: the monitor's live quality\n"
           f"  uv run fraud monitor --watch                         # PR-AUC, recall, drift (PSI), retraining requests\n"
           f"  uv run fraud demo --scenario drift                   # the learning loop: drift, detection, retraining\n"
           f"  curl -s {metrics}/metrics | grep ^fraud_scorer       # the worker's Prometheus metrics\n"
           f"  curl -s -X POST {host}/v1/models/{settings.model_name}:predict -H 'Content-Type: application/json' "
           f"-d '{{\"user_id\": \"{s.user_id}\"}}'\n"
           f"  curl -s -X POST {host}/v2/models/{settings.model_name}/infer -H 'Content-Type: application/json' "
           f"-d '{{\"inputs\": [{{\"name\": \"features\", \"shape\": [1, {len(s.features)}], \"datatype\": \"FP32\", "
           f"\"data\": [{row}]}}]}}'   # re-check the top score from its audit trail\n"
           f"  uv run fraud stack down")


# --- bench ------------------------------------------------------------------------------------
@bench_app.command("produce")
def bench_produce(
    count: Annotated[int, typer.Option(min=1000, help="Events per measurement.")] = 50_000,
    rounds: Annotated[int, typer.Option(min=1, help="Measurements of each contender, interleaved.")] = 3,
) -> None:
    """`fraud produce` events/s beside a raw kafka-python loop sending pre-serialised bytes."""
    from benchmarks.produce import run

    run(load_settings(), count=count, rounds=rounds, console=out)


@bench_app.command("data")
def bench_data(
    small: Annotated[int, typer.Option(min=100, help="Users for the generator-vs-loop comparison.")] = 100_000,
    sizes: Annotated[str, typer.Option(help="Comma-separated user counts for the generator and prep.")] = "100000,1000000",
    prep_users: Annotated[int, typer.Option(min=100, help="Users for the Spark-vs-stream-path comparison.")] = 100_000,
) -> None:
    """Generator and Spark prep: wall time and peak memory, each beside a baseline."""
    from benchmarks.data import run

    try:
        counts = tuple(int(part) for part in sizes.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"{sizes!r} is not a comma-separated list of numbers", param_hint="'--sizes'") from None
    run(small_users=small, sizes=counts, prep_users=prep_users, console=out)


@bench_app.command("pipeline")
def bench_pipeline(
    sizes: Annotated[str, typer.Option(help="Comma-separated user counts, each a fresh local run, e.g. 100000,1000000.")] = "100000",
) -> None:
    """Per-step wall time and peak memory (whole process tree) of a local pipeline run from a clean data dir, per
    size, with the test PR-AUC beside the tuned baseline's."""
    from benchmarks.pipeline import run

    try:
        counts = tuple(int(part) for part in sizes.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"{sizes!r} is not a comma-separated list of numbers", param_hint="'--sizes'") from None
    run(counts, console=out)


@bench_app.command("predictor")
def bench_predictor(
    seconds: Annotated[int, typer.Option(min=1, max=120, help="Duration of each wrk run.")] = 10,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds, alternating the contenders.")] = 2,
) -> None:
    """Predictor req/s and p50/p99 (single rows and 1,000-row batches) beside a zero model, with wrk."""
    from benchmarks.predictor import run

    try:
        run(seconds=seconds, rounds=rounds, console=out)
    except RuntimeError as error:
        raise FraudError(str(error)) from error


@bench_app.command("stream")
def bench_stream(
    events: Annotated[int, typer.Option(min=1000, help="Events timed per contender, after the warm-up.")] = 30_000,
    warm_up: Annotated[int, typer.Option(min=0, help="Events each contender handles before timing starts.")] = 20_000,
    batch_sizes: Annotated[str, typer.Option(help="Comma-separated micro-batch sizes of the worker.")] = "100,500,2000",
    users: Annotated[int, typer.Option(min=10, help="Distinct users in the events and the Feast store.")] = 10_000,
    rates: Annotated[str, typer.Option(help="Comma-separated offered events/s of the latency measurements.")] = "1000,5000",
    seconds: Annotated[float, typer.Option(min=1, help="Duration of the latency measurement.")] = 10.0,
    per_event_events: Annotated[int, typer.Option(min=100, help="Backlog of the (slow) per-event baseline.")] = 3000,
    workers: Annotated[str | None, typer.Option(help=(
        "Comma-separated worker counts, e.g. 1,2: instead of the contenders, drain one backlog with N workers in "
        "one consumer group each (the later ones join mid-run) and account for every transaction."))] = None,
) -> None:
    """Stream worker events/s, p50/p99 latency and time per event, beside raw aiokafka, quixstreams, Faust and per-event."""
    from benchmarks.stream import run, run_scale_out

    sizes = _positive_ints(batch_sizes, "--batch-sizes")
    try:
        if workers is not None:
            counts = _positive_ints(workers, "--workers")
            results = run_scale_out(load_settings(), counts, events=events, users=users, warm_up=warm_up, console=out)
            if not all(result.accounting.ok for result in results):
                raise FraudError("a transaction was lost or scored twice with different content: see the table")
            return
        run(load_settings(), events=events, batch_sizes=sizes, users=users,
            rates=tuple(float(r) for r in _positive_ints(rates, "--rates")), steady_seconds=seconds,
            per_event_events=per_event_events, warm_up=warm_up, console=out)
    except RuntimeError as error:
        raise FraudError(str(error)) from error


def _positive_ints(text: str, option: str) -> tuple[int, ...]:
    """``1,2,4`` as (1, 2, 4); a one-line error naming ``option`` otherwise."""
    try:
        numbers = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of integers", param_hint=f"'{option}'") from None
    if not numbers or min(numbers) < 1:
        raise typer.BadParameter("each must be at least 1", param_hint=f"'{option}'")
    return numbers


@bench_app.command("chaos")
def bench_chaos(
    scenarios: Annotated[str, typer.Option(help="Comma-separated: kills, broker, predictor, feast, rebalance, poison.")]
    = "kills,broker,predictor,feast,rebalance,poison",
    events: Annotated[int, typer.Option(min=1000, help="Events per scenario (poison: a tenth, plus as many good ones).")]
    = 100_000,
) -> None:
    """Faults injected into real processes, then every transaction accounted for; exits 1 if any was lost or differs."""
    from benchmarks.chaos import SCENARIOS, run

    names = [part.strip() for part in scenarios.split(",") if part.strip()]
    if not names or set(names) - set(SCENARIOS):
        raise typer.BadParameter(f"choose from {', '.join(SCENARIOS)}", param_hint="'--scenarios'")
    failed = [result.name for result in run(load_settings(), names, events=events, console=out) if not result.ok]
    if failed:
        raise FraudError(f"chaos: {', '.join(failed)} broke the failure contract (lost, differing or a violation; see above)")


@bench_app.command("redeploy")
def bench_redeploy(
    events: Annotated[int, typer.Option(min=1000, help="Events per run (the baseline's, then the redeploy's).")] = 20_000,
    rate: Annotated[float, typer.Option(min=1, help="Offered events/s.")] = 1000.0,
) -> None:
    """A new model version reloaded under load: no failed call, no pause, a monotonic switch; beside no redeploy."""
    from benchmarks.redeploy import run

    failed = [phase.name for phase in run(load_settings(), events=events, rate=rate, console=out) if not phase.ok]
    if failed:
        raise FraudError(f"redeploy: {', '.join(failed)} broke the requirement (see the violations above)")


@bench_app.command("soak")
def bench_soak(
    events: Annotated[int, typer.Option(min=1000, help="Events in the backlog one worker drains.")] = 1_000_000,
    users: Annotated[int, typer.Option(min=1, help="Distinct users they come from.")] = 200_000,
) -> None:
    """One worker drains a long backlog; its process tree's memory (RSS) at the start, along the way and at the end."""
    from benchmarks.soak import run

    run(load_settings(), events=events, users=users, console=out)


@bench_app.command("recovery")
def bench_recovery(
    users: Annotated[str, typer.Option(help=(
        "Comma-separated counts of users' states in the worker's table before it is restarted, e.g. 50000,1000000."))]
    = "50000",
) -> None:
    """Seconds from a worker's restart to its first new score: with its disk (after SIGTERM, after SIGKILL), with an
    empty disk, and beside them the in-memory table's restart; once per table size."""
    from benchmarks.recovery import run

    run(load_settings(), users=_positive_ints(users, "--users"), console=out)


# --- entry point ------------------------------------------------------------------------------
class _Advance:
    def __init__(self, bar: Progress, task: int) -> None:
        self.bar, self.task = bar, task

    def advance(self, count: int) -> None:
        self.bar.advance(self.task, count)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), transient=False)


def _describe_settings_error(error: ValidationError) -> str:
    parts = []
    for detail in error.errors(include_url=False):
        name = ".".join(str(item) for item in detail["loc"]) or "settings"
        env = f" (FRAUD_{name.upper()})" if name in Settings.model_fields else ""
        parts.append(f"{name}{env}: {detail['msg'].removeprefix('Value error, ')}")
    return "invalid setting " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; turn expected failures into one line on stderr."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="fraud", standalone_mode=False)
    except typer.Exit as done:  # --help, or a command that exits on purpose
        return done.exit_code
    except typer.Abort:
        print("fraud: interrupted", file=sys.stderr)
        return 130
    except typer.TyperException as error:  # click-style usage errors: one line, not a usage screen
        ctx = getattr(error, "ctx", None)
        if type(error).__name__ == "NoArgsIsHelpError":  # bare `fraud` or `fraud stack`: show the help
            print(error.format_message(), file=sys.stderr)
            return 0
        where = f"{ctx.command_path}: " if ctx is not None else "fraud: "
        print(f"{where}{error.format_message()} (see --help)", file=sys.stderr)
        return error.exit_code
    except ValidationError as error:
        print(f"fraud: {_describe_settings_error(error)}", file=sys.stderr)
        return 2
    except FraudError as error:
        print(f"fraud: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fraud: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
