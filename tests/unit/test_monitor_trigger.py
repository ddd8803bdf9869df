"""The retraining trigger: the rules that fire, the cooldown, one run in flight until a new version serves or a timeout."""

from __future__ import annotations

from fraud.drift import SCORE
from monitor.quality import Quality
from monitor.trigger import RetrainTrigger, TriggerRules

BAD = Quality(labels=1_000, frauds=50, precision=0.2, recall=0.1, pr_auc=0.2)
GOOD = Quality(labels=1_000, frauds=50, precision=0.9, recall=0.8, pr_auc=0.85)


def test_low_quality_requests_once_then_waits_for_a_new_version() -> None:
    trigger = RetrainTrigger(TriggerRules(min_labels=500, min_pr_auc=0.5, cooldown_s=60, timeout_s=1_000))
    first = trigger.check(BAD, {}, serving="1", now=0)
    assert first is not None and "PR-AUC 0.200" in first.reason and first.metrics["pr_auc"] == 0.2
    assert first.requested_by == "monitor" and trigger.last_rule == "pr_auc"
    assert trigger.check(BAD, {}, serving="1", now=120) is None  # past the cooldown, but the run is in flight
    assert trigger.check(BAD, {}, serving="2", now=130) is not None  # v2 serves and is bad too: ask again


def test_the_cooldown_holds_even_after_the_new_version_serves() -> None:
    trigger = RetrainTrigger(TriggerRules(min_pr_auc=0.5, cooldown_s=600, timeout_s=1_000))
    assert trigger.check(BAD, {}, serving="1", now=0) is not None
    assert trigger.check(BAD, {}, serving="2", now=100) is None
    assert trigger.check(BAD, {}, serving="2", now=601) is not None


def test_a_run_that_never_deploys_frees_the_flight_after_its_timeout() -> None:
    trigger = RetrainTrigger(TriggerRules(min_pr_auc=0.5, cooldown_s=10, timeout_s=300))
    assert trigger.check(BAD, {}, serving="1", now=0) is not None
    assert trigger.check(BAD, {}, serving="1", now=299) is None and trigger.in_flight
    assert trigger.check(BAD, {}, serving="1", now=301) is not None


def test_drift_fires_on_the_largest_psi_and_too_few_labels_do_not_fire() -> None:
    trigger = RetrainTrigger(TriggerRules(min_labels=500, min_pr_auc=0.5, max_psi=0.25))
    assert trigger.check(Quality(100, 5, 0.1, 0.1, 0.1), {"amount": 0.1}, serving="1", now=0) is None
    assert trigger.check(GOOD, {"amount": 0.1, SCORE: 0.2}, serving="1", now=0) is None
    request = trigger.check(GOOD, {"amount": 0.4, SCORE: 0.3}, serving="1", now=1)
    assert request is not None and request.reason.startswith("PSI of amount is 0.400") and trigger.last_rule == "psi"
    assert request.metrics == {"psi_amount": 0.4, f"psi_{SCORE}": 0.3}


def test_a_request_that_could_not_be_published_is_withdrawn_and_asked_again() -> None:
    trigger = RetrainTrigger(TriggerRules(min_pr_auc=0.5, cooldown_s=600, timeout_s=1_000))
    assert trigger.check(BAD, {}, serving="1", now=0) is not None
    trigger.withdraw()
    assert not trigger.in_flight and trigger.check(BAD, {}, serving="1", now=1) is not None
