"""`fraud stack status` tells a dependency outage apart from rows the predictor refuses."""

from __future__ import annotations

from prometheus_client import generate_latest

from fraud import prometheus
from fraud.local_stack import worker as local_worker
from fraud.local_stack.worker import WorkerStatus
from stream_scorer.metrics import ScorerMetrics


class _Settings:
    """Where `scrape` looks; the HTTP call is replaced by the metrics text."""

    scorer_metrics_host, scorer_metrics_port = "127.0.0.1", 9


def _scraped(metrics: ScorerMetrics, monkeypatch) -> dict[str, float]:
    """The metrics as `scrape` reads them from a worker's /metrics text."""
    class Answer:
        text = generate_latest(metrics.registry).decode()

    monkeypatch.setattr(prometheus.httpx, "get", lambda url, timeout: Answer())
    return local_worker.scrape(_Settings())


def test_a_pause_names_the_dependency_it_waits_for(monkeypatch) -> None:
    metrics = ScorerMetrics()
    metrics.events_in.inc(10)
    metrics.paused.set(1)
    metrics.waiting_for.labels("feast").set(1)
    metrics.waiting_for.labels("predictor").set(0)
    text = WorkerStatus(42, _scraped(metrics, monkeypatch)).describe()
    assert text.startswith("PAUSED: waiting for feast to answer (retrying) (PID 42): 10 events in"), text


def test_refused_rows_are_no_pause(monkeypatch) -> None:
    metrics = ScorerMetrics()
    metrics.events_in.inc(500)
    metrics.scores_out.inc(499)
    metrics.dead_letters.inc(1)
    metrics.rows_refused.inc(1)
    metrics.consumer_lag.labels("0").set(3)
    metrics.consumer_lag.labels("1").set(4)
    text = WorkerStatus(None, _scraped(metrics, monkeypatch)).describe()
    assert text == ("running (not started by this stack): 500 events in, 499 scores out, 1 dead letters "
                    "(1 refused by the predictor or not finite), lag 7"), text
