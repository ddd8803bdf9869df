"""Run the monitor in the foreground: `fraud monitor` or `python -m monitor`."""

from __future__ import annotations

import logging

import faust

from fraud.errors import FraudError
from fraud.settings import Settings, load_settings
from monitor.app import MonitorMetrics, build_monitor_app
from stream_scorer.worker import port_taken

log = logging.getLogger(__name__)


def run_monitor(settings: Settings, loglevel: str = "info") -> None:
    """Serve /metrics, then run the monitor's Faust worker until SIGTERM/SIGINT."""
    host, port = settings.monitor_metrics_host, settings.monitor_metrics_port
    if port_taken(host, port):
        raise FraudError(f"{host}:{port} is taken (another monitor?); set FRAUD_MONITOR_METRICS_PORT")
    metrics = MonitorMetrics()
    app, _ = build_monitor_app(settings, metrics)
    metrics.serve(host, port)
    log.info("monitor metrics on http://%s:%d/metrics", host, port)
    faust.Worker(app, loglevel=loglevel).execute_from_commandline()


def main() -> None:
    import argparse

    argparse.ArgumentParser(prog="python -m monitor", description="Live model quality and drift from fraud-scores and fraud-labels (its own Faust app); settings come from FRAUD_* environment variables.").parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_monitor(load_settings())


if __name__ == "__main__":
    main()
