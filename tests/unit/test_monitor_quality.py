"""The monitor's windowed figures equal scikit-learn's on the same joined rows; PSI against the model's own reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from sklearn.metrics import average_precision_score, precision_score, recall_score

from fraud.drift import REFERENCE_KEY, SCORE, Reference
from fraud.events import Label, Score
from fraud.onnx_model import write_metadata
from fraud.registry import open_registry
from fraud.settings import Settings
from fraud.storage import artifact_store
from monitor.app import Monitor, MonitorMetrics, References
from monitor.quality import Join, Quality, QualityWindow, ServedWindow

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def score(i: int, value: float, threshold: float = 0.5, version: str = "1", amount: float = 10.0) -> Score:
    return Score(transaction_id=f"tx-{i}", user_id=f"user_{i % 7}", event_time=T0 + timedelta(seconds=i), score=value,
                 decision="fraud" if value >= threshold else "legit", threshold=threshold, model_name="m",
                 model_version=version, scored_at=T0 + timedelta(seconds=i), latency_ms=1.0, features={"amount": amount})


def label(i: int, is_fraud: bool) -> Label:
    return Label(transaction_id=f"tx-{i}", user_id=f"user_{i % 7}", is_fraud=is_fraud,
                 source="chargeback" if is_fraud else "cleared", reported_at=T0 + timedelta(days=1))


def test_windowed_quality_equals_sklearn_on_the_same_joined_rows() -> None:
    rng = np.random.default_rng(5)
    n, window = 3_000, 1_000
    truth = rng.random(n) < 0.1
    values = np.clip(np.where(truth, rng.beta(4, 2, n), rng.beta(2, 4, n)), 0, 1)
    labelled = rng.random(n) < 0.8  # some labels never come
    label_first = rng.random(n) < 0.3  # and some come before their score
    join, quality_window = Join(ttl_s=1e9), QualityWindow(window)
    joined = []
    for i in range(n):
        events = [("label", label(i, bool(truth[i])))] if labelled[i] else []
        events.insert(0 if label_first[i] else len(events), ("score", score(i, float(values[i]))))
        for kind, event in events:
            pair = join.add_label(event, i) if kind == "label" else join.add_score(event, i)
            if pair is not None:
                quality_window.add(pair)
                joined.append(i)
    assert join.waiting == (~labelled).sum()  # only the scores that never got a label still wait
    last = np.array(joined[-window:])
    y, s = truth[last], values[last]
    got = quality_window.quality()
    assert got.labels == window and got.frauds == y.sum()
    assert got.pr_auc == average_precision_score(y, s)
    assert got.precision == precision_score(y, s >= 0.5)
    assert got.recall == recall_score(y, s >= 0.5)


def test_the_join_forgets_what_waited_longer_than_its_ttl_and_stays_bounded() -> None:
    join = Join(ttl_s=100, max_waiting=50)
    join.add_score(score(1, 0.9), now=0)
    assert join.add_label(label(1, True), now=50) is not None
    join.add_score(score(2, 0.9), now=0)
    join.add_label(label(3, True), now=200)  # tx-2's score has waited 200 s by now: gone
    assert join.add_label(label(2, True), now=201) is None
    for i in range(100, 300):
        join.add_score(score(i, 0.1), now=300)
    assert join.waiting <= 50 + 2


def test_a_window_without_both_classes_has_no_pr_auc() -> None:
    window = QualityWindow(10)
    window.add(_pair(1, 0.2, False))
    window.add(_pair(2, 0.7, False))
    assert window.quality() == Quality(labels=2, frauds=0, precision=None, recall=None, pr_auc=None)
    window.add(_pair(3, 0.9, True))
    assert window.quality().pr_auc == 1.0


def _pair(i: int, value: float, is_fraud: bool):
    join = Join(1e9)
    join.add_score(score(i, value), 0)
    return join.add_label(label(i, is_fraud), 1)


def test_served_window_psi_is_small_for_the_training_population_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(2)
    reference = Reference.from_samples({"amount": rng.lognormal(3, 1, 20_000), SCORE: rng.beta(1, 20, 20_000)})
    same, shifted = ServedWindow(2_000), ServedWindow(2_000)
    for i in range(2_000):
        same.add(score(i, float(rng.beta(1, 20)), amount=float(rng.lognormal(3, 1))))
        shifted.add(score(i, float(rng.beta(3, 10)), amount=float(rng.lognormal(1, 1))))
    assert max(same.psi(reference).values()) < 0.05
    assert min(shifted.psi(reference).values()) > 0.25
    assert same.alert_rate() == 0.0 or same.alert_rate() < 0.01


class _References:
    def __init__(self, reference: Reference) -> None:
        self.reference = reference

    def of(self, version: str) -> Reference:
        return self.reference


def test_only_the_scores_psi_over_a_full_window_triggers_and_features_are_shown() -> None:
    rng = np.random.default_rng(4)
    reference = Reference.from_samples({"amount": rng.lognormal(3, 1, 10_000), SCORE: rng.beta(1, 20, 10_000)})
    settings = Settings(_env_file=None, monitor_score_window=500, monitor_max_psi=0.25)
    monitor = Monitor(settings, MonitorMetrics(), _References(reference))
    for i in range(499):  # features far off, scores as trained: shown, never a request
        monitor.on_score(score(i, float(rng.beta(1, 20)), amount=float(rng.lognormal(0, 1))), now=i)
    assert monitor.refresh(now=500) is None
    assert monitor.metrics.registry.get_sample_value("fraud_monitor_psi", {"feature": "amount"}) > 1.0
    for i in range(500, 1_500):  # the scores shift and the window is full
        monitor.on_score(score(i, float(rng.beta(5, 5))), now=i)
    request = monitor.refresh(now=1_500)
    assert request is not None and request.reason.startswith("PSI of score")


def test_after_a_redeploy_the_trigger_judges_the_new_version_on_its_own_rows() -> None:
    """The window still holds the old model's poor rows and its scores: they neither fire a request nor count as drift."""
    rng = np.random.default_rng(5)
    reference = Reference.from_samples({"amount": rng.lognormal(3, 1, 10_000), SCORE: rng.beta(1, 20, 10_000)})
    settings = Settings(_env_file=None, monitor_window=400, monitor_min_labels=100, monitor_min_pr_auc=0.8,
                        monitor_score_window=300, monitor_max_psi=0.25, monitor_retrain_cooldown_s=0)
    monitor = Monitor(settings, MonitorMetrics(), _References(reference))
    for i in range(300):  # v1 scores at random: poor quality, and a score distribution unlike v2's reference
        monitor.on_score(score(i, float(rng.random()), version="1"), now=i)
        monitor.on_label(label(i, bool(rng.random() < 0.2)), now=i)
    first = monitor.refresh(now=300)
    assert first is not None and first.reason.startswith("PR-AUC")  # v1 is judged on its rows and found poor
    for i in range(300, 400):  # v2 serves; its 100 labelled rows are good: fraud scores high
        fraud = bool(rng.random() < 0.2)
        monitor.on_score(score(i, float(rng.beta(8, 2) if fraud else rng.beta(1, 20)), version="2"), now=i)
        monitor.on_label(label(i, fraud), now=i)
    assert monitor.quality.quality().pr_auc < 0.8  # the whole window, v1's rows included, still looks poor ...
    assert monitor.quality.quality("2").pr_auc > 0.8  # ... v2's own rows do not
    assert monitor.refresh(now=400) is None  # no second request for the rows v2 was trained to mend
    assert monitor.served.scored_by("2") and len(monitor.served.scored_by("2")) < 300  # PSI: v2's scores only


def _register_onnx(settings: Settings, tmp_path: Path, name: str, metadata: dict[str, str]) -> str:
    """A one-input identity graph with ``metadata``, stored and registered like a trained model; its version."""
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])])
    path = tmp_path / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    write_metadata(path, metadata)
    uri = artifact_store(settings).put(path, f"models/{name}.onnx")
    return open_registry(settings).register(settings.model_name, uri, "onnx", "1", {}).version


def test_each_version_s_reference_is_read_from_its_registered_onnx_file_once(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    reference = Reference.from_samples({"amount": np.arange(100.0), SCORE: np.linspace(0, 1, 100)})
    with_reference = _register_onnx(settings, tmp_path, "a", {REFERENCE_KEY: reference.model_dump_json()})
    without = _register_onnx(settings, tmp_path, "b", {"threshold": "0.5"})
    references = References(settings)
    assert references.of(with_reference) is None and references.needs_load(with_reference, now=0)  # not read yet
    for version in (with_reference, without, "99"):
        references.load(version, now=0)
    assert references.of(with_reference) == reference
    assert references.of(without) is None and references.of("99") is None  # no reference, not registered: no PSI
    assert not references.needs_load(with_reference, now=1) and not references.needs_load(without, now=1)


def test_a_reference_that_cannot_be_read_is_tried_again_later_and_never_raises(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    version = open_registry(settings).register(settings.model_name, (tmp_path / "gone.onnx").as_uri(), "onnx", "1", {}).version
    references = References(settings, retry_s=60)
    references.load(version, now=100)
    assert references.of(version) is None
    assert not references.needs_load(version, now=159) and references.needs_load(version, now=160)
