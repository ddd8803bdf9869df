"""A model redeploy under load (`benchmarks.redeploy`): no failed predictor call, no pause, a monotonic switch.

The CI size of `fraud bench redeploy`: 3,000 events at 500/s, a new tiny model
promoted and the predictor reloaded once half of them are offered.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.chaos_stack import ChaosStack, register_tiny_model, tiny_model
from benchmarks.redeploy import ScoreSeen, redeploy_under_load, regressions
from fraud.features import FEATURE_NAMES
from fraud.onnx_model import write_metadata
from fraud.registry import EmbeddedRegistry
from fraud.settings import Settings
from predictor.model import FraudModel


def test_a_redeploy_under_load_fails_no_call_never_pauses_and_switches_once(chaos_stack: ChaosStack) -> None:
    phase = redeploy_under_load(chaos_stack, events=3_000, rate=500.0)
    print(phase.summary())  # pytest -rP shows it
    report = phase.summary()
    assert phase.swap is not None and phase.swap.new_version != phase.swap.old_version, report
    old, new = phase.swap.old_version, phase.swap.new_version
    # (a) every transaction scored exactly once
    accounting = phase.accounting
    assert accounting.published == accounting.scored == len(phase.scores) == 3_000, accounting.describe()
    assert accounting.duplicated_identical == accounting.duplicated_different == accounting.dead_lettered == 0, report
    # (b) no failed call, no pause, seen by a sampler that did sample
    assert phase.predictor_failures == phase.dependency_failures == 0, report
    assert phase.samples > 0 and phase.paused_samples == 0, report
    # (c) per partition, by offset, never back from the new version to the old one
    assert regressions(phase.scores, old, new) == [], report
    # (d) both versions scored: the switch happened, midway
    versions = phase.versions()
    assert versions.get(old, 0) > 0 and versions.get(new, 0) > 0 and set(versions) == {old, new}, versions
    assert phase.ok, report


def test_a_score_by_the_old_version_after_the_new_one_is_a_regression() -> None:
    scores = [ScoreSeen(0, 0, "1", 1.0, 0.0), ScoreSeen(0, 1, "2", 1.0, 0.0), ScoreSeen(0, 2, "1", 1.0, 0.0),
              ScoreSeen(1, 0, "1", 1.0, 0.0), ScoreSeen(1, 1, "2", 1.0, 0.0)]
    assert regressions(scores, "1", "2") == ["p0@2 scored by v1 after p0@1 by v2"]
    assert regressions(scores[3:], "1", "2") == []


def test_a_reload_to_a_model_that_cannot_score_keeps_the_previous_version_serving(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, _env_file=None)
    model = FraudModel(settings)
    register_tiny_model(settings, seed=1)
    assert model.load() and model.current.version == "1"
    # A graph of 14 inputs that declares 13 features: every request the worker sends it would fail.
    broken = tiny_model(tmp_path / "broken.onnx", seed=2)
    write_metadata(broken, {"feature_names": list(FEATURE_NAMES)[:-1]})
    registry = EmbeddedRegistry(tmp_path / "registry" / "registry.json")
    version = registry.register(settings.model_name, broken.as_uri(), "onnx", "17", {}).version
    registry.promote(settings.model_name, version)
    assert model.load() and model.ready
    assert model.current.version == "1"
