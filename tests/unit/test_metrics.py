"""`observe_many`: the same bucket counts, count and sum as observing each value alone."""

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from stream_scorer.metrics import LATENCY_BUCKETS, observe_many


def _histogram() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram("latency_seconds", "test", registry=registry, buckets=LATENCY_BUCKETS)


def test_observe_many_counts_as_observe_does() -> None:
    rng = np.random.default_rng(3)
    # bucket bounds themselves (counted in their own bucket), zero, values past the last finite bound
    values = np.concatenate([np.array(LATENCY_BUCKETS), [0.0, 0.0, 45.0, 1e9], rng.exponential(0.2, 500)])
    one_by_one, alone = _histogram()
    for value in values.tolist():
        alone.observe(value)
    in_bulk, many = _histogram()
    observe_many(many, values[:100])
    observe_many(many, values[100:])
    observe_many(many, np.array([]))
    for bound in [*LATENCY_BUCKETS, float("inf")]:
        le = "+Inf" if bound == float("inf") else str(bound)
        assert in_bulk.get_sample_value("latency_seconds_bucket", {"le": le}) == \
            one_by_one.get_sample_value("latency_seconds_bucket", {"le": le}), le
    assert in_bulk.get_sample_value("latency_seconds_count") == len(values)
    assert in_bulk.get_sample_value("latency_seconds_sum") == pytest.approx(
        one_by_one.get_sample_value("latency_seconds_sum"), rel=1e-12)
