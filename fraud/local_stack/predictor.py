"""The local predictor service: `python -m predictor` on FRAUD_PREDICTOR_HOST:PORT, tracked by PID."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

import httpx

from fraud.errors import FraudError
from fraud.local_stack import process
from fraud.serving import model_version, reload_model  # noqa: F401 - kept importable here
from fraud.settings import Settings, settings_env

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictorStatus:
    """What `fraud stack status` shows for the predictor."""

    address: str
    pid: int | None
    live: bool
    ready: bool
    model_version: str | None

    def describe(self) -> str:
        owner = f"PID {self.pid}" if self.pid else "not started by this stack"
        if self.ready:
            return f"ready ({owner}) on {self.address}, serving model version {self.model_version}"
        if self.live:
            return f"running ({owner}) on {self.address}, NOT ready: no model loaded yet (run `fraud pipeline run`)"
        if self.pid:
            return f"starting ({owner}); not answering on {self.address} yet"
        return "stopped"


class LocalPredictor:
    """Start, stop and query the predictor process."""

    def __init__(self, settings: Settings, name: str = "predictor") -> None:
        self.settings = settings
        self.files = process.ServiceFiles(name, settings.data_dir / "run")

    def status(self) -> PredictorStatus:
        base, address = self.settings.predictor_url, f"{self.settings.predictor_host}:{self.settings.predictor_port}"
        live = ready = False
        version = None
        try:
            live = httpx.get(f"{base}/v2/health/live", timeout=2).status_code == 200
            ready = live and httpx.get(f"{base}/v2/health/ready", timeout=2).status_code == 200
            if ready:
                version = model_version(self.settings)
        except httpx.HTTPError:
            pass
        return PredictorStatus(address, self.files.read_pid(), live, ready, version)

    def start(self) -> PredictorStatus:
        """Start it unless something answers already; wait until it is live (ready needs a model)."""
        current = self.status()
        if current.live:
            return current
        if current.pid is not None:
            raise FraudError(f"predictor (PID {current.pid}) runs but does not answer; see {self.files.log_file}")
        host, port = self.settings.predictor_host, self.settings.predictor_port
        if process.port_open(host, port):
            raise FraudError(f"port {host}:{port} is taken by something that is not a predictor; set FRAUD_PREDICTOR_PORT")
        # Every setting, as the worker gets them: a predictor on another port or data dir hears of it.
        pid = process.spawn(self.files, [sys.executable, "-m", "predictor"], env=settings_env(self.settings))
        log.info("starting the predictor (PID %d); log: %s", pid, self.files.log_file)
        process.wait_until(lambda: self.status().live, self.settings.stack_start_timeout_s, self.files, pid, "live")
        return self.status()

    def wait_ready(self) -> None:
        """Wait until it serves a model (V2 ready); raises FraudError naming the log if it dies or time runs out."""
        pid = self.files.read_pid()
        if pid is None:
            raise FraudError("the predictor is not running (started by this stack); run `fraud stack up`")
        process.wait_until(lambda: self.status().ready, self.settings.stack_start_timeout_s, self.files, pid, "ready")

    def stop(self) -> bool:
        return process.stop(self.files, self.settings.stack_stop_timeout_s)

    def kill(self) -> bool:
        """SIGKILL, as a crash. False if it was not running."""
        return process.kill(self.files)
