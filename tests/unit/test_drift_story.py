"""The drift story's bookkeeping: its settings, the moments it reads off the monitor, where the drift starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fraud.drift_story import DriftPlan, Sample, Watch, moments, story_settings
from fraud.events import Score
from fraud.settings import Settings


def _point(at_s: float, version: str | None, requests: float = 0, scores_in: float = 0) -> Sample:
    return Sample(at_s, 0, 0, 0.9, 0.8, 0.01, 0.2, version, requests, scores_in)


def test_labels_are_compressed_like_the_stream(tmp_path: Path) -> None:
    plan = DriftPlan(rate=200.0)
    settings = story_settings(Settings(data_dir=tmp_path, _env_file=None), plan, events_per_day=9_000)
    # A streamed day takes 9,000 / 200 = 45 s, so a label due 6 h of story time later goes out 11.25 s later.
    assert abs(plan.label_delay_median_s * settings.label_time_scale - 11.25) < 1e-9
    assert settings.data_dir == tmp_path / "drift" and settings.monitor_min_pr_auc == plan.min_pr_auc
    assert settings.retrain_labelled_window_days > 0  # the retraining sees the labelled served rows


def test_the_watch_reads_detection_and_the_new_version_off_the_monitor() -> None:
    watch = Watch()
    for point in (_point(2, None), _point(4, "1", scores_in=100), _point(6, "1", requests=1, scores_in=500),
                  _point(8, "1", requests=1, scores_in=900), _point(10, "2", requests=1, scores_in=1_000),
                  _point(12, "2", requests=1, scores_in=4_000)):
        watch.add(point)
    assert (watch.first_version, watch.detected_s, watch.new_version, watch.serving_s) == ("1", 6, "2", 10)
    assert watch.scored_after_swap() == 3_000


def test_no_swap_means_nothing_scored_after_it() -> None:
    watch = Watch()
    watch.add(_point(2, "1", requests=1, scores_in=10_000))
    assert watch.new_version is None and watch.scored_after_swap() == 0


def _score(transaction_id: str, event_time: datetime, scored_at: datetime, version: str, latency_ms: float) -> Score:
    return Score(transaction_id=transaction_id, user_id="user_1", event_time=event_time, score=0.1, decision="legit",
                 threshold=0.5, model_name="fraud-detection", model_version=version, scored_at=scored_at,
                 latency_ms=latency_ms, features={})


def test_the_moments_come_from_the_events_themselves() -> None:
    drift = datetime(2026, 1, 16, tzinfo=UTC)
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    scores = {s.transaction_id: s for s in (
        _score("t1", drift - timedelta(hours=1), now, "1", 5.0),
        _score("t2", drift + timedelta(minutes=1), now + timedelta(seconds=10), "1", 2_000.0),  # entered at +8 s
        _score("t3", drift + timedelta(minutes=2), now + timedelta(seconds=9), "1", 50.0),
        _score("t4", drift + timedelta(hours=5), now + timedelta(seconds=90), "2", 10.0),
        _score("t5", drift + timedelta(hours=6), now + timedelta(seconds=95), "2", 10.0))}
    asked = [(now + timedelta(seconds=40), "cli"), (now + timedelta(seconds=30), "monitor"),
             (now + timedelta(seconds=60), "monitor")]
    seen = moments(scores, drift, "2", asked)
    assert seen.onset == now + timedelta(seconds=8)  # the earliest a drifted transaction entered Kafka
    assert seen.requested == now + timedelta(seconds=30)  # the monitor's first request, not a person's
    assert seen.serving == now + timedelta(seconds=90)
    assert moments(scores, drift, None, []).serving is None


def test_the_story_retrains_on_quality_not_on_calendar_drift(tmp_path: Path) -> None:
    settings = story_settings(Settings(data_dir=tmp_path, _env_file=None), DriftPlan(), events_per_day=9_000)
    assert settings.monitor_max_psi > 1_000  # PSI is shown; twelve days in minutes would fire it by the calendar alone
