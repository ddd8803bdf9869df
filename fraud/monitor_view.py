"""`fraud monitor --watch`: the running monitor's figures as a live table, read from its /metrics."""

from __future__ import annotations

import math
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from fraud.errors import FraudError
from fraud.local_stack.monitor import monitor_metrics, serving_version
from fraud.settings import Settings

_FIGURES = (("PR-AUC", "fraud_monitor_pr_auc"), ("precision", "fraud_monitor_precision"),
            ("recall", "fraud_monitor_recall"), ("alert rate", "fraud_monitor_alert_rate"),
            ("labelled in window", "fraud_monitor_labels_in_window"), ("frauds in window", "fraud_monitor_frauds_in_window"),
            ("largest PSI", "fraud_monitor_psi_max"), ("retraining requests", "fraud_monitor_retrain_requests_total"),
            ("scores read", "fraud_monitor_scores_in_total"), ("labels read", "fraud_monitor_labels_in_total"))
_PSI = "fraud_monitor_psi:"


def monitor_table(metrics: dict[str, float], top: int = 5) -> Table:
    """The window's figures, the serving version, and the features that drifted most."""
    table = Table(title=f"fraud monitor: model v{serving_version(metrics) or '?'}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, key in _FIGURES:
        table.add_row(name, _shown(metrics.get(key)))
    drifted = sorted(((key[len(_PSI):], value) for key, value in metrics.items() if key.startswith(_PSI)),
                     key=lambda item: item[1], reverse=True)
    for feature, value in drifted[:top]:
        table.add_row(f"PSI {feature}", _shown(value))
    return table


def _shown(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:,.0f}" if value == int(value) and abs(value) >= 1 else f"{value:.3f}"


def watch_monitor(settings: Settings, console: Console, interval_s: float = 1.0) -> None:
    """Refresh the table every ``interval_s`` until Ctrl-C."""
    metrics = monitor_metrics(settings)
    if metrics is None:
        raise FraudError(f"no monitor answers on {settings.monitor_metrics_host}:{settings.monitor_metrics_port} "
                         f"(`fraud stack up` starts one; `fraud monitor` runs one in the foreground)")
    try:
        with Live(monitor_table(metrics), console=console, refresh_per_second=4) as live:
            while True:
                time.sleep(interval_s)
                live.update(monitor_table(monitor_metrics(settings) or metrics))
    except KeyboardInterrupt:
        return
