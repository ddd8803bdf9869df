"""A running predictor, seen from outside: the version it serves, and asking it to reload.

Runtime code (the pipeline's deploy step) uses this; it needs only the predictor's URL.
"""

from __future__ import annotations

import httpx

from fraud.errors import FraudError
from fraud.settings import Settings


def model_version(settings: Settings) -> str | None:
    """The version the predictor serves, from its V2 model-ready and a one-row V2 call."""
    try:
        metadata = httpx.get(f"{settings.predictor_url}/v2/models/{settings.model_name}", timeout=2).json()
        width = metadata["inputs"][0]["shape"][1]
        body = {"inputs": [{"name": "features", "shape": [1, width], "datatype": "FP32", "data": [0.0] * width}]}
        answer = httpx.post(f"{settings.predictor_url}/v2/models/{settings.model_name}/infer", json=body, timeout=5)
        return answer.json().get("model_version") if answer.status_code == 200 else None
    except (httpx.HTTPError, KeyError, IndexError, ValueError):
        return None


def reload_model(settings: Settings, timeout_s: float = 60) -> str:
    """Ask a running predictor to load the production version (KServe repository API); say what happened."""
    url = f"{settings.predictor_url}/v2/repository/models/{settings.model_name}/load"
    try:
        answer = httpx.post(url, timeout=timeout_s)
    except httpx.HTTPError:
        return f"no predictor answers on {settings.predictor_url}; it will load the new version when it starts"
    if answer.status_code != 200:
        raise FraudError(f"the predictor refused to reload: HTTP {answer.status_code} {answer.text[:300]}")
    return f"predictor on {settings.predictor_url} now serves version {model_version(settings)}"
