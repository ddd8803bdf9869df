"""The decision threshold is chosen on validation for a target precision."""

from __future__ import annotations

import numpy as np

from training_pipeline.evaluate import choose_threshold


def test_lowest_threshold_reaching_the_target_precision() -> None:
    labels = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    # At 0.6 precision is 3/3; at 0.5 it is 3/4; at 0.4, 4/5.
    assert choose_threshold(labels, scores, target_precision=0.95) == 0.6
    assert choose_threshold(labels, scores, target_precision=0.8) == 0.4


def test_unreachable_precision_falls_back_to_best_f1() -> None:
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.2])
    assert choose_threshold(labels, scores, target_precision=0.99) in {0.9, 0.3}


def test_the_baseline_search_covers_rate_leaf_and_l2() -> None:
    from training_pipeline.evaluate import BASELINE_GRID

    assert {(p["learning_rate"], p["min_samples_leaf"], p["l2_regularization"]) for p in BASELINE_GRID} == {
        (rate, leaf, l2) for rate in (0.05, 0.1) for leaf in (20, 50) for l2 in (0.0, 1.0)}


def test_the_report_states_the_model_to_baseline_ratio(tmp_path) -> None:
    from training_pipeline.evaluate import Evaluation, write_report

    evaluation = Evaluation(threshold=0.5, pr_auc=0.80, roc_auc=0.9, precision=0.7, recall=0.6, baseline_pr_auc=0.82,
                            baseline_roc_auc=0.91, model_to_baseline=0.80 / 0.82, test_rows=4, test_frauds=2,
                            confusion=[[2, 0], [1, 1]], baseline_params={"learning_rate": 0.1})
    labels, scores = np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.4])
    page = write_report(tmp_path / "report.html", evaluation, labels, scores, scores).read_text()
    assert "Model PR-AUC / baseline PR-AUC = 0.8000 / 0.8200 = <b>0.976</b>" in page and "learning_rate=0.1" in page


def test_the_baseline_exports_to_onnx_with_the_mlps_interface(tmp_path) -> None:
    """A winning baseline is served as the candidate: one `features` input, a `score` output equal to predict_proba."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from fraud.features import FEATURE_NAMES
    from fraud.onnx_model import OnnxFraudModel
    from training_pipeline.evaluate import export_baseline

    rng = np.random.default_rng(3)
    rows = rng.normal(size=(4000, len(FEATURE_NAMES))).astype(np.float32)
    truth = (rows[:, 0] + rows[:, 1] * rows[:, 2] > 1.2).astype(int)
    fitted = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(rows, truth)
    served = OnnxFraudModel(export_baseline(fitted, tmp_path / "baseline.onnx"))
    assert served.input_name == "features" and served.output_names == ["score"]
    scores = served.predict(rows[:500])
    assert scores.shape == (500,)
    np.testing.assert_allclose(scores, fitted.predict_proba(rows[:500])[:, 1], atol=1e-5)


def test_the_baseline_is_tuned_on_a_sample_and_refit_on_all_of_train(monkeypatch) -> None:
    """Above ``tuning_rows`` the grid runs on samples; the winner, fitted on the whole train split, is kept if better."""
    import pandas as pd
    from sklearn.metrics import average_precision_score

    from fraud.features import FEATURE_NAMES
    from training_pipeline import evaluate
    from training_pipeline.evaluate import BASELINE_GRID, tuned_baseline

    monkeypatch.setattr(evaluate, "BASELINE_GRID", BASELINE_GRID[:2])  # two fits of the grid are enough here

    rng = np.random.default_rng(5)
    rows = rng.normal(size=(6000, len(FEATURE_NAMES)))
    frame = pd.DataFrame(rows, columns=list(FEATURE_NAMES)).assign(fraud=(rows[:, 0] + 0.2 * rng.normal(size=6000) > 1.5).astype(int))
    train, valid = frame.iloc[:4000], frame.iloc[4000:]
    model, params = tuned_baseline(train, valid, seed=0, tuning_rows=1000)
    assert params in BASELINE_GRID
    assert average_precision_score(valid["fraud"], model.predict_proba(valid[list(FEATURE_NAMES)])[:, 1]) > 0.5
