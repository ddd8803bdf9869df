"""Pipeline step `register`: the gate. Register and promote the candidate only if it passes three rules.

1. It takes exactly the features the stream worker computes, in the same order
   (`fraud.features.FEATURE_NAMES`): a model served other columns would score garbage.
2. Its test PR-AUC is at least 0.98x the tuned HistGradientBoosting baseline's on
   the same split (measured by `evaluate`): a model a simple GBDT beats clearly is
   not worth serving.
3. It beats production: a higher PR-AUC on the same test split, with the
   production model scored now by its own ONNX artifact. With no production
   model, rules 2 and 3 pass (a first model below the baseline is promoted with a
   note saying so: otherwise there would be nothing to serve).

The decision, and why (which rule, with the figures), is the step's output either way.
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

from fraud.features import FEATURE_NAMES
from fraud.onnx_model import OnnxFraudModel
from fraud.registry import ModelRegistry, open_registry
from fraud.settings import Settings
from fraud.storage import ArtifactStore, artifact_store, fetch

log = logging.getLogger(__name__)
BASELINE_MARGIN = 0.98  # the candidate's PR-AUC must reach this share of the tuned baseline's


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


KINDS = {"mlp": "MLP", "hgb": "tuned HistGradientBoosting"}  # evaluate's `candidate_kind`, for people


def other_features(candidate: OnnxFraudModel) -> str | None:
    """Rule 1: why ``candidate`` cannot be served by the stream worker, or None."""
    return feature_difference(candidate.feature_names, list(FEATURE_NAMES))


def feature_difference(served: list[str], computed: list[str]) -> str | None:
    """Why a model taking ``served`` columns cannot score the ``computed`` ones, naming the difference; None if equal."""
    if served == computed:
        return None
    missing = [name for name in computed if name not in served]
    extra = [name for name in served if name not in computed]
    if missing or extra:
        detail = "; ".join(part for part in (f"missing {missing}" if missing else "",
                                             f"extra {extra}" if extra else "") if part)
    else:
        at = next(i for i, (a, b) in enumerate(zip(served, computed)) if a != b)
        detail = f"same names, another order: column {at} is {served[at]!r}, the worker's is {computed[at]!r}"
    return f"refused: the candidate takes other features than the stream worker computes ({detail})"


def baseline_wins(candidate: OnnxFraudModel) -> str | None:
    """Rule 2: the figures if the tuned baseline beats ``candidate`` by more than the margin, or None."""
    return baseline_verdict(candidate.describe().get("metrics", {}))


def baseline_verdict(metrics: dict[str, float]) -> str | None:
    """Rule 2 on evaluate's metrics: the figures if PR-AUC < BASELINE_MARGIN x the baseline's; None if it passes."""
    pr_auc, baseline = metrics.get("pr_auc"), metrics.get("baseline_pr_auc")
    if pr_auc is None or not baseline or pr_auc >= BASELINE_MARGIN * baseline:
        return None
    return (f"the tuned HistGradientBoosting baseline wins: candidate test PR-AUC {pr_auc:.4f} is "
            f"{pr_auc / baseline:.3f}x the baseline's {baseline:.4f}, below {BASELINE_MARGIN}x")


def baseline_passed(metrics: dict[str, float]) -> str:
    """Rule 2's figures when it passed (empty without evaluate's metrics), to append to a promotion's reason."""
    pr_auc, baseline = metrics.get("pr_auc"), metrics.get("baseline_pr_auc")
    if pr_auc is None or not baseline:
        return ""
    return f"; {pr_auc / baseline:.3f}x the tuned baseline's PR-AUC {baseline:.4f} (at least {BASELINE_MARGIN}x)"


def gate_and_register(candidate_path: Path, test: pd.DataFrame, settings: Settings,
                      registry: ModelRegistry | None = None, store: ArtifactStore | None = None) -> Decision:
    """Apply the three rules on ``test``; if the candidate passes (or is the first servable model), register and promote.

    A first model below the baseline is still promoted, saying so: with nothing in
    production the predictor would otherwise have nothing to serve.
    """
    registry = registry or open_registry(settings)
    candidate = OnnxFraudModel(candidate_path)
    kind = KINDS.get(str(candidate.describe().get("candidate_kind", "mlp")), "MLP")
    current = registry.production(settings.model_name)
    refused = other_features(candidate)
    if refused is not None:
        log.info(refused)
        measured = pr_auc_on(candidate, test) if set(candidate.feature_names) <= set(test.columns) else 0.0
        return Decision(False, refused, measured, production_version=current.version if current else None)
    candidate_pr_auc = pr_auc_on(candidate, test)
    production_pr_auc = None
    if current is not None:
        with tempfile.TemporaryDirectory() as scratch:
            production = OnnxFraudModel(fetch(settings, current.uri, Path(scratch) / "production.onnx"))
            if set(production.feature_names) <= set(test.columns):
                production_pr_auc = pr_auc_on(production, test)
    beaten = baseline_wins(candidate)
    if current is not None and beaten is not None:
        reason = f"kept production v{current.version}: {beaten}"
    elif production_pr_auc is not None and candidate_pr_auc <= production_pr_auc:
        reason = (f"kept production v{current.version}: candidate PR-AUC {candidate_pr_auc:.4f} "
                  f"does not beat {production_pr_auc:.4f} on the same test split")
    else:
        reason = None
    if reason is not None:
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
        reason = f"promoted v{version.version} ({kind}): first model (test PR-AUC {candidate_pr_auc:.4f})"
        reason += f"; note: {beaten}" if beaten else ""
    elif production_pr_auc is None:
        reason = (f"promoted v{version.version} ({kind}): production v{current.version} takes other inputs, "
                  "so it cannot be compared")
    else:
        reason = (f"promoted v{version.version} ({kind}): candidate PR-AUC {candidate_pr_auc:.4f} beats production "
                  f"v{current.version} {production_pr_auc:.4f} on the same test split")
    if not beaten:
        reason += baseline_passed(candidate.describe().get("metrics", {}))
    log.info(reason)
    return Decision(True, reason, candidate_pr_auc, version.version, uri,
                    current.version if current else None, production_pr_auc)
