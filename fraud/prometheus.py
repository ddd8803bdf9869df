"""Reading a service's Prometheus /metrics (the worker's, the monitor's) with prometheus_client's parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def read_metrics(url: str, timeout_s: float = 2.0) -> dict[str, float] | None:
    """The samples at ``url``, or None if nothing answers.

    Keys are sample names (labelled series summed), and ``name:value`` for each
    series of a one-label metric, e.g. ``fraud_scorer_waiting_for:predictor``.
    """
    try:
        text = httpx.get(url, timeout=timeout_s).text
    except httpx.HTTPError:
        return None
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + sample.value
            if len(sample.labels) == 1:
                values[f"{sample.name}:{next(iter(sample.labels.values()))}"] = sample.value
    return values
