"""The local monitor: `python -m monitor`, tracked by PID, observed through its /metrics."""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass

from fraud.local_stack import process
from fraud.prometheus import read_metrics
from fraud.settings import Settings, settings_env

log = logging.getLogger(__name__)


def monitor_metrics(settings: Settings, timeout_s: float = 2.0) -> dict[str, float] | None:
    """The monitor's Prometheus metrics, or None if it does not answer."""
    return read_metrics(f"http://{settings.monitor_metrics_host}:{settings.monitor_metrics_port}/metrics", timeout_s)


def serving_version(metrics: dict[str, float]) -> str | None:
    """The model version that scored the latest event the monitor read."""
    prefix = "fraud_monitor_model_version:"
    return next((key[len(prefix):] for key, value in metrics.items() if key.startswith(prefix) and value == 1), None)


def _figure(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None or math.isnan(value) else format(value, spec)


@dataclass(frozen=True)
class MonitorStatus:
    """What `fraud stack status` shows for the monitor."""

    pid: int | None
    metrics: dict[str, float] | None

    def describe(self) -> str:
        if self.metrics is None:
            return f"starting (PID {self.pid})" if self.pid else "stopped"
        m = self.metrics
        owner = f"PID {self.pid}" if self.pid else "not started by this stack"
        return (f"running ({owner}): model v{serving_version(m) or '?'}, {m.get('fraud_monitor_labels_in_window', 0):,.0f} "
                f"labelled in the window, PR-AUC {_figure(m.get('fraud_monitor_pr_auc'))}, "
                f"recall {_figure(m.get('fraud_monitor_recall'))}, largest PSI {_figure(m.get('fraud_monitor_psi_max'))}, "
                f"{m.get('fraud_monitor_retrain_requests_total', 0):,.0f} retraining requests")


class LocalMonitor:
    """Start, stop and query the monitor process."""

    def __init__(self, settings: Settings, name: str = "monitor") -> None:
        self.settings = settings
        self.files = process.ServiceFiles(name, settings.data_dir / "run")

    def status(self) -> MonitorStatus:
        return MonitorStatus(self.files.read_pid(), monitor_metrics(self.settings))

    def start(self) -> MonitorStatus:
        """Start it unless it runs; wait until its metrics endpoint answers."""
        current = self.status()
        if current.pid is not None or current.metrics is not None:
            return current
        pid = process.spawn(self.files, [sys.executable, "-m", "monitor"], env=settings_env(self.settings))
        log.info("starting the monitor (PID %d); log: %s", pid, self.files.log_file)
        process.wait_until(lambda: monitor_metrics(self.settings) is not None, self.settings.stack_start_timeout_s,
                           self.files, pid, "serving metrics")
        return self.status()

    def stop(self) -> bool:
        return process.stop(self.files, self.settings.stack_stop_timeout_s)
