"""The local stream worker: `python -m stream_scorer`, tracked by PID, observed through its /metrics."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

import httpx

from fraud.errors import FraudError
from fraud.local_stack import process
from fraud.prometheus import read_metrics
from fraud.settings import Settings, settings_env

log = logging.getLogger(__name__)


def scrape(settings: Settings, timeout_s: float = 2.0) -> dict[str, float] | None:
    """The worker's Prometheus metrics (`fraud.prometheus.read_metrics`), or None if it does not answer."""
    return read_metrics(f"http://{settings.scorer_metrics_host}:{settings.scorer_metrics_port}/metrics", timeout_s)


def ready(settings: Settings, timeout_s: float = 2.0) -> bool:
    """True once the worker answers 200 on /readyz: its table recovered, consumption running."""
    from stream_scorer.metrics import READY_PATH

    try:
        answer = httpx.get(f"http://{settings.scorer_metrics_host}:{settings.scorer_metrics_port}{READY_PATH}",
                           timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200


@dataclass(frozen=True)
class WorkerStatus:
    """What `fraud stack status` shows for the worker."""

    pid: int | None
    metrics: dict[str, float] | None

    def describe(self) -> str:
        if self.metrics is None:
            return f"starting (PID {self.pid})" if self.pid else "stopped"
        m = self.metrics
        owner = f"PID {self.pid}" if self.pid else "not started by this stack"
        refused = m.get("fraud_scorer_rows_refused_total", 0)
        return (f"{self._state()} ({owner}): {m.get('fraud_scorer_events_in_total', 0):,.0f} events in, "
                f"{m.get('fraud_scorer_scores_out_total', 0):,.0f} scores out, "
                f"{m.get('fraud_scorer_dead_letters_total', 0):,.0f} dead letters"
                + (f" ({refused:,.0f} refused by the predictor or not finite)" if refused else "")
                + f", lag {m.get('fraud_scorer_consumer_lag', 0):,.0f}")

    def _state(self) -> str:
        """Running, or paused and for which dependency (predictor, feast, kafka)."""
        if not self.metrics.get("fraud_scorer_consumption_paused"):
            return "running"
        prefix = "fraud_scorer_waiting_for:"
        waiting = [key[len(prefix):] for key, value in self.metrics.items() if key.startswith(prefix) and value]
        return f"PAUSED: waiting for {' and '.join(waiting) or 'a dependency'} to answer (retrying)"


class LocalWorker:
    """Start, stop and query one stream worker process.

    Several can run side by side (one consumer group, partitions shared among them):
    each needs its own ``name`` (its PID and log files) and FRAUD_SCORER_METRICS_PORT.
    ``env`` adds variables for the worker only, e.g. Faust's own BROKER_SESSION_TIMEOUT.
    """

    def __init__(self, settings: Settings, name: str = "worker", env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.files = process.ServiceFiles(name, settings.data_dir / "run")
        self.env = env or {}

    def status(self) -> WorkerStatus:
        return WorkerStatus(self.files.read_pid(), scrape(self.settings))

    def start(self) -> WorkerStatus:
        """Start it unless it runs; wait until its metrics endpoint answers."""
        current = self.status()
        if current.pid is not None or current.metrics is not None:
            return current
        pid = process.spawn(self.files, [sys.executable, "-m", "stream_scorer"], env=settings_env(self.settings) | self.env)
        log.info("starting the stream worker (PID %d); log: %s", pid, self.files.log_file)
        process.wait_until(lambda: scrape(self.settings) is not None, self.settings.stack_start_timeout_s,
                           self.files, pid, "serving metrics")
        return self.status()

    def wait_ready(self) -> None:
        """Wait until the worker has recovered its table and consumes (its /readyz, as a cluster's probe asks it)."""
        pid = self.files.read_pid()
        if pid is None:
            raise FraudError("the stream worker is not running (started by this stack); run `fraud stack up`")
        process.wait_until(lambda: ready(self.settings), self.settings.stack_start_timeout_s, self.files, pid, "ready")

    def stop(self) -> bool:
        return process.stop(self.files, self.settings.stack_stop_timeout_s)

    def kill(self) -> bool:
        """SIGKILL, as a crash: no offsets committed, nothing flushed. False if it was not running."""
        return process.kill(self.files)

    def restart(self) -> WorkerStatus:
        self.stop()
        return self.start()
