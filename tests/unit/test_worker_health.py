"""The worker's health endpoints: alive while it recovers its table (so liveness never kills it), ready once it consumes."""

from __future__ import annotations

import httpx

from fraud.local_stack.process import free_port
from stream_scorer.metrics import LIVE_PATH, READY_PATH, ScorerMetrics


def test_a_recovering_worker_is_alive_but_not_ready_and_its_metrics_are_served() -> None:
    metrics, port = ScorerMetrics(), free_port()
    metrics.serve("127.0.0.1", port)
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(base + LIVE_PATH).status_code == 200
    recovering = httpx.get(base + READY_PATH)
    assert recovering.status_code == 503 and "recovering the user table" in recovering.text
    metrics.set_consuming()
    assert httpx.get(base + READY_PATH).status_code == 200
    assert "fraud_scorer_ready 1.0" in httpx.get(base + "/metrics").text
