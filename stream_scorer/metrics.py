"""The worker's Prometheus metrics, served on FRAUD_SCORER_METRICS_HOST:PORT/metrics.

Rates (events/s in, scores/s out) are `rate()` of the counters, as Prometheus
intends; `fraud bench stream` and `fraud stack status` read the same endpoint.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

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
        self.paused = Gauge("fraud_scorer_consumption_paused", "1 while consumption is paused for a dependency.",
                            registry=registry)
        self.consumer_lag = Gauge("fraud_scorer_consumer_lag", "Records on the input partitions not processed yet.",
                                  ["partition"], registry=registry)
        self.feast_push_failures = Counter("fraud_scorer_feast_push_failures", "Batches whose Feast push failed.",
                                           registry=registry)
        self.profile_reads = Counter("fraud_scorer_profile_reads", "User profiles read from Feast (cache misses).",
                                     registry=registry)

    def serve(self, host: str, port: int) -> None:
        """Start the /metrics HTTP endpoint on a background thread."""
        start_http_server(port, addr=host, registry=self.registry)
