"""Pipeline step `deploy`: roll the promoted version out.

Locally it asks the running predictor to reload (KServe's repository API loads
the new production version with no failed request) and records the rollout in
``<data dir>/deployments.jsonl``. On a cluster the InferenceService will be
patched instead, so Knative rolls a new revision (a later issue).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fraud.settings import Settings


def deploy(decision: dict, settings: Settings) -> str:
    """Record the rollout of a promoted version; say what happened either way."""
    if not decision["promoted"]:
        return f"nothing to deploy: {decision['reason']}"
    from fraud.serving import reload_model

    outcome = reload_model(settings)
    record = {"at": datetime.now(UTC).isoformat(), "model": settings.model_name, "version": decision["version"],
              "uri": decision["uri"], "target": outcome}
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with (settings.data_dir / "deployments.jsonl").open("a") as journal:
        journal.write(json.dumps(record) + "\n")
    return f"deployed {settings.model_name} v{decision['version']}: {outcome}"
