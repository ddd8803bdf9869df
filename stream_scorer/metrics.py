"""The worker's Prometheus metrics, served on FRAUD_SCORER_METRICS_HOST:PORT/metrics, with /livez and /readyz.

Rates (events/s in, scores/s out) are `rate()` of the counters, as Prometheus
intends; `fraud bench stream` and `fraud stack status` read the same endpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ScorerMetrics:
    """Every metric of one worker, in its own registry."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.events_in = Counter("fraud_scorer_events_in", "Records consumed from the transactions topic.", registry=registry)
        self.scores_out = Counter("fraud_scorer_scores_out", "Score events published to fraud-scores.", registry=registry)
        self.dead_letters = Counter("fraud_scorer_dead_letters", "Records sent to the dead-letter topic.", registry=registry)
        self.redelivered = Counter("fraud_scorer_redelivered_skipped",
                                   "Redelivered records skipped because their score is out already.", registry=registry)
        self.skipped_read_again = Counter("fraud_scorer_skipped_read_again",
                                          "Records not delivered by the consumer, read from the broker and scored.", registry=registry)
        self.batch_size = Histogram("fraud_scorer_batch_size", "Records per micro-batch.", registry=registry,
                                    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000))
        self.end_to_end = Histogram(
            "fraud_scorer_end_to_end_seconds",
            "From the transaction entering Kafka (record timestamp) to its score being published.",
            registry=registry, buckets=LATENCY_BUCKETS)
        self.predictor_latency = Histogram("fraud_scorer_predictor_seconds", "One V2 call to the predictor.",
                                           registry=registry, buckets=LATENCY_BUCKETS)
        self.predictor_failures = Counter("fraud_scorer_predictor_failures",
                                          "Predictor calls that failed for want of a predictor (each retried).",
                                          registry=registry)
        self.dependency_failures = Counter("fraud_scorer_dependency_failures",
                                           "Transient faults of a dependency (predictor, feast, kafka), each retried.",
                                           ["dependency"], registry=registry)
        self.waiting_for = Gauge("fraud_scorer_waiting_for", "1 while consumption is paused for this dependency.",
                                 ["dependency"], registry=registry)
        self.rows_refused = Counter("fraud_scorer_rows_refused",
                                    "Records the predictor refused (4xx) or whose features were not finite: dead-lettered.",
                                    registry=registry)
        self.unexpected_errors = Counter("fraud_scorer_unexpected_errors",
                                         "Records dead-lettered because scoring them raised an unexpected exception.",
                                         registry=registry)
        self.ready = Gauge("fraud_scorer_ready", "1 once the user table is recovered and consumption runs.",
                           registry=registry)
        self.consuming = False  # the same, for /readyz
        self.paused = Gauge("fraud_scorer_consumption_paused", "1 while consumption is paused for a dependency.",
                            registry=registry)
        self.consumer_lag = Gauge("fraud_scorer_consumer_lag", "Records on the input partitions not processed yet.",
                                  ["partition"], registry=registry)
        self.feast_rows_dropped = Counter("fraud_scorer_feast_rows_dropped",
                                          "Users' rows dropped, not pushed to Feast, because too many waited.",
                                          registry=registry)
        self.feast_push_failures = Counter("fraud_scorer_feast_push_failures", "Batches whose Feast push failed.",
                                           registry=registry)
        self.profile_reads = Counter("fraud_scorer_profile_reads", "User profiles read from Feast (cache misses).",
                                     registry=registry)

    def set_consuming(self) -> None:
        """The table is recovered and consumption runs: ready (the gauge and /readyz)."""
        self.consuming = True
        self.ready.set(1)

    def serve(self, host: str, port: int) -> None:
        """Start the HTTP endpoint on a background thread: /metrics, and the health checks of `health_app`."""
        server = make_server(host, port, health_app(make_wsgi_app(self.registry), lambda: self.consuming),
                             ThreadingWSGIServer, handler_class=_QuietHandler)
        threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """``histogram.observe`` of each of ``values`` (finite), counted per bucket with numpy.

    The end-to-end latency has one value per event, and `observe` walked the buckets in
    Python for each. prometheus_client has no bulk form, so this adds to the same
    per-bucket counters and sum `observe` adds to (`_buckets`, `_sum`: the library's
    own names, checked against `observe` in tests/unit/test_metrics.py).
    """
    if not len(values):
        return
    histogram._raise_if_not_observable()
    bounds = np.asarray(histogram._upper_bounds, dtype=np.float64)
    per_bucket = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    histogram._sum.inc(float(np.sum(values)))
    for bucket, count in enumerate(per_bucket[:len(bounds)].tolist()):
        if count:
            histogram._buckets[bucket].inc(count)


LIVE_PATH, READY_PATH = "/livez", "/readyz"


def health_app(metrics: Callable, ready: Callable[[], bool]) -> Callable:
    """A WSGI app: ``/livez`` 200 while the process serves at all (a worker recovering its table is alive, and
    must not be killed for being slow); ``/readyz`` 200 once it consumes, 503 while it recovers; else ``metrics``."""

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == LIVE_PATH:
            return _answer(start_response, "200 OK", b"alive\n")
        if path == READY_PATH:
            if ready():
                return _answer(start_response, "200 OK", b"ready: consuming\n")
            return _answer(start_response, "503 Service Unavailable", b"not ready: recovering the user table\n")
        return metrics(environ, start_response)

    return app


def _answer(start_response: Callable, status: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """One thread per request, so a slow scrape never blocks a probe."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass  # probes every few seconds would flood the worker's log
