"""Pipeline step `register`: the gate. Register and promote the candidate only if it beats production.

"Beats" means a higher PR-AUC on the same test split, with the production model
scored now by its own ONNX artifact. With no production model, the first
candidate is promoted. The decision, and why, is the step's output either way.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sklearn.metrics import average_precision_score

from fraud.onnx_model import OnnxFraudModel
from fraud.registry import ModelRegistry, open_registry
from fraud.settings import Settings
from fraud.storage import ArtifactStore, artifact_store, fetch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """The gate's verdict."""

    promoted: bool
    reason: str
    candidate_pr_auc: float
    version: str | None = None
    uri: str | None = None
    production_version: str | None = None
    production_pr_auc: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def pr_auc_on(model: OnnxFraudModel, test: pd.DataFrame) -> float:
    """PR-AUC of ``model`` on ``test``, feeding the columns the model's metadata names."""
    return float(average_precision_score(test["fraud"].astype(int), model.predict(test[model.feature_names].to_numpy())))


def gate_and_register(candidate_path: Path, test: pd.DataFrame, settings: Settings,
                      registry: ModelRegistry | None = None, store: ArtifactStore | None = None) -> Decision:
    """Compare with production on ``test``; if better (or first), upload, register and promote."""
    registry = registry or open_registry(settings)
    candidate = OnnxFraudModel(candidate_path)
    candidate_pr_auc = pr_auc_on(candidate, test)
    current = registry.production(settings.model_name)
    production_pr_auc = None
    if current is not None:
        with tempfile.TemporaryDirectory() as scratch:
            production = OnnxFraudModel(fetch(settings, current.uri, Path(scratch) / "production.onnx"))
            if set(production.feature_names) <= set(test.columns):
                production_pr_auc = pr_auc_on(production, test)
        if production_pr_auc is not None and candidate_pr_auc <= production_pr_auc:
            reason = (f"kept production v{current.version}: candidate PR-AUC {candidate_pr_auc:.4f} "
                      f"does not beat {production_pr_auc:.4f} on the same test split")
            log.info(reason)
            return Decision(False, reason, candidate_pr_auc, production_version=current.version,
                            production_pr_auc=production_pr_auc)

    digest = hashlib.sha256(candidate_path.read_bytes()).hexdigest()[:12]
    key = f"{settings.model_name}/{datetime.now(UTC):%Y%m%dT%H%M%S}-{digest}/model.onnx"
    uri = (store or artifact_store(settings)).put(candidate_path, key)
    metadata = candidate.describe() | {"test_pr_auc": candidate_pr_auc}
    version = registry.register(settings.model_name, uri, "onnx", str(metadata.get("opset", "17")), metadata)
    registry.promote(settings.model_name, version.version)
    if current is None:
        reason = f"promoted v{version.version}: first model (test PR-AUC {candidate_pr_auc:.4f})"
    elif production_pr_auc is None:
        reason = f"promoted v{version.version}: production v{current.version} takes other inputs, so it cannot be compared"
    else:
        reason = (f"promoted v{version.version}: candidate PR-AUC {candidate_pr_auc:.4f} beats production "
                  f"v{current.version} {production_pr_auc:.4f} on the same test split")
    log.info(reason)
    return Decision(True, reason, candidate_pr_auc, version.version, uri,
                    current.version if current else None, production_pr_auc)
