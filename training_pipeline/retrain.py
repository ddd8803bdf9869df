"""Retraining runs: by hand (`fraud retrain`, `fraud pipeline run`) and on request (`fraud retrain --listen`).

A run is local (kfp.local in this virtualenv) or, with FRAUD_KFP_HOST, a run of the
compiled pipeline on a Kubeflow Pipelines server. A request is a
`fraud.retrain.requested.v1` event on `fraud-retrain` (from the monitor, from
`fraud retrain --request`, or from any producer). The listener runs one pipeline
at a time: requests that arrive while it goes join it instead of queueing up a
run each (a run trains on all the data there is, so it covers them all).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from fraud.errors import FraudError
from fraud.events import RetrainRequest
from fraud.settings import Settings

if TYPE_CHECKING:
    import kfp

log = logging.getLogger(__name__)

Handled = Literal["ran", "joined", "by hand"]


# --- local runs ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunOutcome:
    """What one local pipeline run did."""

    run_id: str
    log_path: Path
    step_seconds: dict[str, float]
    decision: str  # the gate's reason
    deployed: str  # the deploy step's message

    def line(self) -> str:
        """One line for the journal and the log."""
        return f"run {self.run_id}: {self.decision}; {self.deployed}"


def run_local(settings: Settings, users: int | None = None) -> RunOutcome:
    """Run the whole pipeline with kfp.local in this virtualenv; a FraudError naming the log if it fails."""
    from training_pipeline.pipeline import run_locally
    from training_pipeline.steps import pipeline_dir

    run_id = uuid.uuid4().hex[:12]
    log_path = pipeline_dir(settings) / "runs" / f"{run_id}.log"
    try:
        message = run_locally(settings.data_dir, users or settings.pipeline_users, run_id, log_path)
    except Exception as error:  # the runner raises its own types; the log has the step's traceback
        reason = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # the runner colours its messages
        raise FraudError(f"the pipeline failed ({reason}); full log: {log_path}") from error
    timings = [json.loads(line) for line in (pipeline_dir(settings) / "timings.jsonl").read_text().splitlines()]
    steps = {t["step"]: t["seconds"] for t in timings if t["run"] == run_id}
    decision = json.loads((pipeline_dir(settings) / "last_decision.json").read_text())
    return RunOutcome(run_id, log_path, steps, decision["reason"], message)


def run_local_in_child(settings: Settings, users: int | None = None) -> RunOutcome:
    """`run_local` in a child process: a local run points fds 1 and 2 at its log, which must not take the listener's."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as child:
        return child.submit(run_local, settings, users).result()


# --- runs on a Kubeflow Pipelines server ---------------------------------------------------------
@dataclass(frozen=True)
class KfpRun:
    """A run submitted to KFP; ``state`` is KFP's (SUCCEEDED, FAILED, ...), None until waited for."""

    run_id: str
    url: str
    state: str | None = None
    error: str | None = None
    seconds: float | None = None

    def line(self) -> str:
        """One line for the journal and the log."""
        took = f" after {self.seconds:.0f}s" if self.seconds is not None else ""
        return f"KFP run {self.run_id} {self.state or 'submitted'}{took}: {self.url}"


# A cancelled run is finished too (kfp.Client.wait_for_run_completion in 2.16 would wait it out to the timeout).
KFP_FINISHED = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED", "ERROR"}


class KfpRuns:
    """Submits the compiled pipeline to the KFP API at FRAUD_KFP_HOST and follows its runs."""

    def __init__(self, settings: Settings) -> None:
        if not settings.kfp_host:
            raise FraudError("no KFP server: set FRAUD_KFP_HOST")
        self.settings = settings
        self.host = settings.kfp_host if settings.kfp_host.startswith("http") else f"https://{settings.kfp_host}"
        with self._calling("connect"):
            self.client = self._connect()

    def submit(self, reason: str, users: int | None = None) -> KfpRun:
        """Compile the pipeline for FRAUD_PIPELINE_IMAGE and start a run of it in FRAUD_KFP_EXPERIMENT."""
        from training_pipeline.pipeline import PIPELINE_NAME, compile_pipeline

        name = f"{PIPELINE_NAME} {datetime.now(UTC):%Y-%m-%d %H:%M:%S}: {reason}"[:128]
        with tempfile.TemporaryDirectory() as tmp, self._calling("submit a run"), _quiet():
            package = compile_pipeline(self.settings.pipeline_image, Path(tmp) / "pipeline.yaml")
            result = self.client.create_run_from_pipeline_package(
                str(package), arguments={"users": users} if users else {}, run_name=name,
                experiment_name=self.settings.kfp_experiment, namespace=self.settings.kfp_namespace)
        return KfpRun(result.run_id, self.run_url(result.run_id))

    def wait(self, run: KfpRun, timeout_s: float) -> KfpRun:
        """Read the run's state until it finishes; a FraudError if it does not in ``timeout_s`` (it goes on)."""
        started = time.monotonic()
        while True:
            with self._calling(f"read run {run.run_id}"):
                info = self.client.get_run(run.run_id)
            state = str(info.state or "")
            if state.upper() in KFP_FINISHED:
                error = info.error.message if info.error is not None and info.error.message else None
                return KfpRun(run.run_id, run.url, state.upper(), error, time.monotonic() - started)
            if time.monotonic() - started > timeout_s:
                raise FraudError(f"KFP run {run.run_id} is still {state or 'pending'} after {timeout_s:.0f}s "
                                 f"(it goes on): {run.url}")
            time.sleep(self.settings.kfp_poll_s)

    def run_url(self, run_id: str) -> str:
        """The run's page in the KFP UI."""
        return f"{(self.settings.kfp_ui_host or self.host).rstrip('/')}/#/runs/details/{run_id}"

    def _connect(self) -> kfp.Client:
        import warnings

        import kfp

        token = self.settings.kfp_token.get_secret_value() if self.settings.kfp_token else None
        with warnings.catch_warnings(), _quiet():  # its "only works with KFP v2" warning and its prints
            warnings.simplefilter("ignore", FutureWarning)
            return kfp.Client(host=self.host, existing_token=token, namespace=self.settings.kfp_namespace or "kubeflow",
                              ui_host=self.settings.kfp_ui_host)

    @contextlib.contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        """Turn the client's errors (connection, HTTP status) into one line naming the host."""
        import kfp_server_api
        import urllib3

        try:
            yield
        except kfp_server_api.ApiException as error:
            raise FraudError(f"KFP at {self.host} refused to {what}: HTTP {error.status} {error.reason}"
                             + _api_message(error.body)) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            cause = getattr(error, "reason", None) or error
            raise FraudError(f"cannot reach KFP at {self.host} to {what}: {_last_clause(str(cause))}") from error


def run_on_kfp(settings: Settings, request: RetrainRequest, users: int | None = None) -> str:
    """Submit a run for ``request`` and wait for it (FRAUD_RETRAIN_MAX_RUN_S); its line, or a FraudError if it failed."""
    runs = KfpRuns(settings)
    done = runs.wait(runs.submit(f"{request.reason} ({request.requested_by})", users), settings.retrain_max_run_s)
    if done.state != "SUCCEEDED":
        raise FraudError(failure_line(done))
    return done.line()


def failure_line(run: KfpRun) -> str:
    """Why a finished KFP run did not succeed, in one line."""
    return f"KFP run {run.run_id} ended {run.state}" + (f": {run.error}" if run.error else "") + f"; see {run.url}"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """kfp.Client prints links with print() when it connects and submits; they go to the debug log instead."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield
    finally:
        for line in printed.getvalue().splitlines():
            log.debug("kfp: %s", line)


def _api_message(body: object) -> str:
    try:
        message = json.loads(body).get("message") if body else None
    except (TypeError, ValueError, AttributeError):
        message = None
    return f" ({_last_clause(str(message))})" if message else ""


def _last_clause(text: str) -> str:
    """urllib3 nests its reasons ("<obj>: Failed to establish a new connection: [Errno 111] Connection refused")."""
    return text.split(">: ", 1)[-1].strip()[:300]


# --- requests: the journal and the single-flight listener -----------------------------------------
def journal_path(settings: Settings) -> Path:
    """Where each request (and each run by hand) is recorded with what came of it."""
    return settings.data_dir / "pipeline" / "retrain_requests.jsonl"


@dataclass(frozen=True)
class Journal:
    """Append-only JSON lines: the request, how it was handled, the outcome."""

    path: Path

    def append(self, request: RetrainRequest, handled: Handled, outcome: str) -> None:
        """Record one request."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"at": datetime.now(UTC).isoformat(), "request": request.model_dump(mode="json"), "handled": handled,
                 "outcome": outcome}
        with self.path.open("a") as journal:
            journal.write(json.dumps(entry) + "\n")

    def entries(self) -> list[dict]:
        """Everything recorded so far, oldest first."""
        return [json.loads(line) for line in self.path.read_text().splitlines()] if self.path.exists() else []


def by_hand(reason: str) -> RetrainRequest:
    """The request a person makes with `fraud retrain` (run now, or published with --request)."""
    return RetrainRequest(reason=reason, requested_at=datetime.now(UTC), requested_by="cli")


class RetrainListener:
    """Single flight: one run at a time in its own thread; a request that arrives while it goes joins it.

    Pure of Kafka: ``handle`` is called for each request in the order they arrive,
    ``running`` tells the consumer when everything it handed over has been dealt
    with (so it can commit), and ``run(request) -> outcome`` is whatever retrains.
    """

    def __init__(self, run: Callable[[RetrainRequest], str], journal: Journal) -> None:
        self.run, self.journal = run, journal
        self._lock = threading.Lock()
        self._covered: list[RetrainRequest] | None = None  # the requests the run going on answers
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while a run goes on (its requests are not answered yet)."""
        with self._lock:
            return self._covered is not None

    def handle(self, request: RetrainRequest) -> Literal["started", "joined"]:
        """Start a run for ``request``, or let it join the run going on."""
        with self._lock:
            if self._covered is not None:
                self._covered.append(request)
                log.info("retraining already running; request from %s (%s) joins it", request.requested_by, request.reason)
                return "joined"
            self._covered = [request]
        log.info("retraining requested by %s (%s): starting a run", request.requested_by, request.reason)
        self._thread = threading.Thread(target=self._run, args=(request,), name="retrain-run", daemon=True)
        self._thread.start()
        return "started"

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the run going on, if any; False if it still runs after ``timeout_s``."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return not self.running

    def _run(self, request: RetrainRequest) -> None:
        try:
            outcome = self.run(request)
            log.info("retraining done: %s", outcome)
        except FraudError as error:
            outcome = f"failed: {error}"
            log.error("retraining failed: %s", error)
        except Exception as error:  # noqa: BLE001 - a bug in one run must not leave the listener stuck "running"
            outcome = f"failed: {type(error).__name__}: {error}"
            log.exception("retraining failed")
        with self._lock:  # recorded before `running` turns False, so a commit never runs ahead of the journal
            for index, covered in enumerate(self._covered or []):
                self.journal.append(covered, "ran" if index == 0 else "joined", outcome)
            self._covered = None


class RetrainConsumer(Protocol):
    """The part of kafka-python's KafkaConsumer the loop uses (a fake in tests)."""

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict: ...
    def commit(self) -> None: ...


def serve(consumer: RetrainConsumer, listener: RetrainListener, stop: Callable[[], bool]) -> None:
    """Hand each request to ``listener``; commit what was read once no run is going (all of it answered).

    The consumer keeps polling during a run (so Kafka never takes a long run for a
    dead consumer) but commits nothing then: a request's offset is committed once
    the run it started or joined has ended. A bad record is logged with its reason
    and skipped; its offset goes with the next commit.
    """
    from fraud.events import InvalidEvent, decode

    unanswered = False
    while not stop():
        if unanswered and not listener.running:
            _commit(consumer)
            unanswered = False
        for records in consumer.poll(timeout_ms=1000).values():
            for record in records:
                unanswered = True
                try:
                    request = decode(record.value, RetrainRequest, record.headers)
                except InvalidEvent as error:  # a control topic: a bad record is skipped, with its reason
                    log.warning("skipped record %d of %s[%d]: %s", record.offset, record.topic, record.partition, error.reason)
                    continue
                listener.handle(request)
    if unanswered:
        listener.wait()
        _commit(consumer)


def _commit(consumer: RetrainConsumer) -> None:
    from kafka.errors import CommitFailedError

    try:
        consumer.commit()
    except CommitFailedError as error:  # a rebalance: those requests come again and start (or join) a run
        log.warning("could not commit the handled requests (%s); they will be read again", error)


def listen(settings: Settings, run: Callable[[RetrainRequest], str], stop: Callable[[], bool] = lambda: False) -> None:
    """Consume retraining requests from FRAUD_TOPIC_RETRAIN in FRAUD_RETRAIN_GROUP and answer them one run at a time."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(settings.topic_retrain, **settings.kafka_client_config(), group_id=settings.retrain_group,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    log.info("listening for retraining requests on %s (group %s)", settings.topic_retrain, settings.retrain_group)
    try:
        serve(consumer, RetrainListener(run, Journal(journal_path(settings))), stop)
    finally:
        consumer.close()


def request_runner(settings: Settings, users: int | None = None) -> Callable[[RetrainRequest], str]:
    """What the listener runs per request: a KFP run (FRAUD_KFP_HOST) or a local one."""
    if settings.kfp_host:
        return lambda request: run_on_kfp(settings, request, users)
    return lambda request: run_local_in_child(settings, users).line()
