"""Pipeline step `evaluate`: test-split metrics beside a tuned HistGradientBoosting baseline, the threshold, a report.

The candidate is the better of the two: when the tuned baseline beats the MLP by
more than the gate's margin (as it does on small data), the baseline itself is
exported to ONNX (skl2onnx, same input, a `score` output) and becomes the
candidate, with its own threshold and drift reference. The gate then compares
whichever it is with production.

The decision threshold is picked on the validation split: the lowest score
whose precision reaches ``settings.target_precision`` (so recall is as high as
that precision allows). The test split is only ever used to report.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_curve, roc_auc_score, roc_curve

from fraud.features import FEATURE_NAMES
from fraud.onnx_model import OnnxFraudModel
from fraud.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """What `evaluate` measured on the test split."""

    threshold: float
    pr_auc: float
    roc_auc: float
    precision: float
    recall: float
    baseline_pr_auc: float
    baseline_roc_auc: float
    model_to_baseline: float  # PR-AUC ratio on test: the gate refuses a candidate below 0.98
    test_rows: int
    test_frauds: int
    confusion: list[list[int]] = field(default_factory=list)  # [[tn, fp], [fn, tp]]
    roc: dict[str, list[float]] = field(default_factory=dict)  # fpr, tpr, thresholds (subsampled)
    baseline_params: dict[str, float] = field(default_factory=dict)  # the tuned baseline's settings
    candidate_kind: str = "mlp"  # "mlp" (Keras -> tf2onnx) or "hgb" (the tuned baseline -> skl2onnx)
    mlp_pr_auc: float = 0.0  # the MLP's test PR-AUC, whichever became the candidate

    def metrics(self) -> dict[str, float]:
        """The scalar metrics, for ONNX metadata, the registry and KFP."""
        return {k: v for k, v in asdict(self).items() if isinstance(v, (int, float))}


def choose_threshold(labels: np.ndarray, scores: np.ndarray, target_precision: float) -> float:
    """Lowest threshold whose precision on these rows is at least ``target_precision`` (else best F1)."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    reaching = np.flatnonzero(precision[:-1] >= target_precision)
    if len(reaching):
        return float(thresholds[reaching[0]])
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    log.warning("no threshold reaches precision %.2f on valid; using the best-F1 threshold", target_precision)
    return float(thresholds[int(np.argmax(f1))])


# A small search (8 fits): learning rate, leaf size and L2; early stopping picks the rounds.
BASELINE_GRID = [{"learning_rate": rate, "min_samples_leaf": leaf, "l2_regularization": l2}
                 for rate in (0.05, 0.1) for leaf in (20, 50) for l2 in (0.0, 1.0)]


def tuned_baseline(train: pd.DataFrame, valid: pd.DataFrame, seed: int,
                   tuning_rows: int) -> tuple[HistGradientBoostingClassifier, dict]:
    """The HistGradientBoosting baseline with the settings of `BASELINE_GRID` that score best on valid (PR-AUC).

    The grid is fitted and compared on uniform samples of train and valid (at most ``tuning_rows`` rows each):
    eight fits on a million rows, each scored on a million more, took most of the evaluate step. The winner is
    fitted again on the whole train split, and whichever of its two fits scores better on the whole valid split
    is the baseline, so a refit that early stopping cut short cannot weaken it.
    """
    train_sample, valid_sample = (_at_most(frame, tuning_rows, seed) for frame in (train, valid))
    best = max((_fit_scored(train_sample, valid_sample, seed, params) for params in BASELINE_GRID), key=lambda fit: fit[0])
    if train_sample is not train:
        model, params = best[1], best[2]
        refit = _fit_scored(train, valid, seed, params)
        best = max(refit, (_valid_pr_auc(model, valid), model, params), key=lambda fit: fit[0])
    return best[1], best[2]


def _at_most(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """``frame`` itself, or a uniform sample of ``rows`` of its rows if it has more."""
    return frame.sample(n=rows, random_state=seed) if len(frame) > rows else frame


def _fit_scored(train: pd.DataFrame, valid: pd.DataFrame, seed: int,
                params: dict) -> tuple[float, HistGradientBoostingClassifier, dict]:
    """(valid PR-AUC, the fitted baseline, its settings) of one fit on ``train``.

    Early stopping watches average precision on a slice of train, the metric the
    gate compares, rather than the loss, which favours confident but blunt models.
    """
    columns = list(FEATURE_NAMES)
    model = HistGradientBoostingClassifier(max_iter=500, early_stopping=True, scoring="average_precision",
                                           random_state=seed, **params)
    model.fit(train[columns], train["fraud"].astype(int))
    valid_pr_auc = _valid_pr_auc(model, valid)
    log.info("baseline %s on %d rows: valid PR-AUC %.4f (%d rows)", params, len(train), valid_pr_auc, len(valid))
    return valid_pr_auc, model, params


def _valid_pr_auc(model: HistGradientBoostingClassifier, valid: pd.DataFrame) -> float:
    return float(average_precision_score(valid["fraud"].to_numpy(int), model.predict_proba(valid[list(FEATURE_NAMES)])[:, 1]))


def export_baseline(model: HistGradientBoostingClassifier, path: Path) -> Path:
    """The fitted baseline as ONNX with the MLP's interface: input `features` [N, F] float32, output `score` [N, 1]."""
    import onnx
    from onnx import helper
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    from training_pipeline.train import INPUT_NAME, OUTPUT_NAME

    graph_model = to_onnx(model, initial_types=[(INPUT_NAME, FloatTensorType([None, len(FEATURE_NAMES)]))],
                          options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    graph = graph_model.graph
    probabilities = next(output.name for output in graph.output if output.name == "probabilities")
    constants = {"score_start": [1], "score_end": [2], "score_axis": [1]}
    for name, value in constants.items():
        graph.initializer.append(helper.make_tensor(name, onnx.TensorProto.INT64, [1], value))
    graph.node.append(helper.make_node("Slice", [probabilities, *constants], [OUTPUT_NAME], name="fraud_probability"))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT, [None, 1]))
    onnx.checker.check_model(graph_model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(graph_model, str(path))
    return path


def evaluate(onnx_path: Path, train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, settings: Settings,
             report_path: Path | None = None, baseline_out: Path | None = None) -> Evaluation:
    """Score valid and test with the ONNX model, fit the baseline, compute the candidate's metrics, write the report.

    With ``baseline_out``, a baseline that beats the MLP by more than the gate's
    margin is exported there and is the candidate (``candidate_kind`` "hgb").
    """
    from training_pipeline.register import BASELINE_MARGIN

    model = OnnxFraudModel(onnx_path)
    columns = list(FEATURE_NAMES)
    y_valid, y_test = valid["fraud"].to_numpy(int), test["fraud"].to_numpy(int)
    valid_scores, mlp_scores = model.predict(valid[columns].to_numpy()), model.predict(test[columns].to_numpy())
    scores = mlp_scores  # the candidate's, unless the baseline wins below
    mlp_pr_auc = float(average_precision_score(y_test, mlp_scores))

    baseline, baseline_params = tuned_baseline(train, valid, settings.train_seed, settings.baseline_tuning_rows)
    baseline_scores = baseline.predict_proba(test[columns])[:, 1]
    baseline_pr_auc = float(average_precision_score(y_test, baseline_scores))
    kind = "mlp"
    if baseline_out is not None and mlp_pr_auc < BASELINE_MARGIN * baseline_pr_auc:
        exported = OnnxFraudModel(export_baseline(baseline, baseline_out))
        valid_scores, scores = exported.predict(valid[columns].to_numpy()), exported.predict(test[columns].to_numpy())
        # ONNX keeps the trees' thresholds in float32, so a row right at a split can fall the other way (seen:
        # 4e-3 on one row); a broken export (wrong column, wrong class) is off by far more than the limit.
        drift = float(np.max(np.abs(scores - baseline_scores))) if len(scores) else 0.0
        if drift > 1e-2:
            raise RuntimeError(f"the baseline's ONNX export and scikit-learn disagree by {drift:.2e} on test (limit 1e-2)")
        kind = "hgb"
        log.info("the tuned baseline (test PR-AUC %.4f) beats the MLP (%.4f) by more than the margin: it is the candidate",
                 baseline_pr_auc, mlp_pr_auc)
    threshold = choose_threshold(y_valid, valid_scores, settings.target_precision)
    pr_auc = float(average_precision_score(y_test, scores))

    decided = scores >= threshold
    tn, fp, fn, tp = confusion_matrix(y_test, decided, labels=[0, 1]).ravel()
    fpr, tpr, roc_thresholds = roc_curve(y_test, scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 200)).astype(int))  # KFP's UI draws 200 points fine
    evaluation = Evaluation(
        threshold=threshold,
        pr_auc=pr_auc,
        roc_auc=float(roc_auc_score(y_test, scores)),
        precision=float(tp / (tp + fp)) if tp + fp else 0.0,
        recall=float(tp / (tp + fn)) if tp + fn else 0.0,
        baseline_pr_auc=baseline_pr_auc,
        baseline_roc_auc=float(roc_auc_score(y_test, baseline_scores)),
        model_to_baseline=pr_auc / baseline_pr_auc if baseline_pr_auc else float("inf"),
        test_rows=len(y_test),
        test_frauds=int(y_test.sum()),
        confusion=[[int(tn), int(fp)], [int(fn), int(tp)]],
        roc={"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(),
             "thresholds": np.minimum(roc_thresholds[keep], 1.0).tolist()},
        baseline_params=baseline_params,
        candidate_kind=kind,
        mlp_pr_auc=mlp_pr_auc,
    )
    log.info("candidate %s: test PR-AUC %.4f (MLP %.4f, tuned baseline %.4f), ROC-AUC %.4f, precision %.3f recall %.3f "
             "at %.4f", kind, evaluation.pr_auc, mlp_pr_auc, evaluation.baseline_pr_auc, evaluation.roc_auc,
             evaluation.precision, evaluation.recall, threshold)
    if report_path is not None:
        write_report(report_path, evaluation, y_test, mlp_scores, baseline_scores)
    return evaluation


def write_report(path: Path, evaluation: Evaluation, labels: np.ndarray, scores: np.ndarray, baseline: np.ndarray) -> Path:
    """A self-contained HTML page: metrics table and the PR curves of the model and the baseline."""
    import matplotlib

    from training_pipeline.register import BASELINE_MARGIN

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4.5), dpi=110)
    for name, values in (("MLP (ONNX)", scores), ("tuned HistGradientBoosting baseline", baseline)):
        precision, recall, _ = precision_recall_curve(labels, values)
        axis.plot(recall, precision, label=f"{name}: PR-AUC {average_precision_score(labels, values):.3f}")
    axis.scatter([evaluation.recall], [evaluation.precision], color="black", zorder=3,
                 label=f"threshold {evaluation.threshold:.3f}")
    axis.set(xlabel="recall", ylabel="precision", title="Precision-recall on the test split", xlim=(0, 1), ylim=(0, 1.02))
    axis.legend(loc="lower left", fontsize=8)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    png = base64.b64encode(buffer.getvalue()).decode()
    tuned = ", ".join(f"{k}={v:g}" for k, v in evaluation.baseline_params.items())
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" if isinstance(v, float)
                   else f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in evaluation.metrics().items())
    (tn, fp), (fn, tp) = evaluation.confusion
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "<!doctype html><meta charset='utf-8'><title>Fraud model evaluation</title>"
        "<body style='font-family:sans-serif;max-width:760px;margin:2em auto'>"
        "<h1>Fraud model evaluation</h1>"
        f"<img alt='precision-recall curves' src='data:image/png;base64,{png}'>"
        f"<h2>Metrics (test split)</h2><table border='1' cellpadding='4'>{rows}</table>"
        f"<p>Baseline: HistGradientBoosting tuned on the validation split ({html.escape(tuned)}). "
        f"Model PR-AUC / baseline PR-AUC = {evaluation.pr_auc:.4f} / {evaluation.baseline_pr_auc:.4f} "
        f"= <b>{evaluation.model_to_baseline:.3f}</b> (the gate refuses a candidate below {BASELINE_MARGIN}). "
        f"The candidate is <b>{'the tuned baseline, exported to ONNX' if evaluation.candidate_kind == 'hgb' else 'the MLP'}</b> "
        f"(MLP test PR-AUC {evaluation.mlp_pr_auc:.4f}).</p>"
        "<h2>Confusion matrix at the threshold</h2><table border='1' cellpadding='4'>"
        f"<tr><th></th><th>predicted legit</th><th>predicted fraud</th></tr>"
        f"<tr><th>legit</th><td>{tn}</td><td>{fp}</td></tr><tr><th>fraud</th><td>{fn}</td><td>{tp}</td></tr></table>"
        "</body>"
    )
    return path
