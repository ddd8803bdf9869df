"""When to ask for retraining: quality below a floor or drift above a ceiling, with a cooldown and one run in flight.

A request is in flight from the moment it is made until the scores show
another model version (the run deployed a model) or ``timeout_s`` passes (the
run failed, or its candidate was not promoted). Meanwhile, and for
``cooldown_s`` after any request, nothing more is asked: a stale model keeps
failing the checks until the new one serves, and one run is what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fraud.events import RetrainRequest
from monitor.quality import Quality

RULES = ("pr_auc", "psi")  # what can fire a request: the `reason` label of fraud_monitor_retrain_requests_total


@dataclass(frozen=True)
class TriggerRules:
    """The thresholds and the pacing of requests."""

    min_labels: int = 500
    min_pr_auc: float = 0.5
    max_psi: float = 0.25
    cooldown_s: float = 600.0
    timeout_s: float = 3_600.0


class RetrainTrigger:
    """Decides, on each check, whether to request retraining; the clock is passed in."""

    def __init__(self, rules: TriggerRules) -> None:
        self.rules = rules
        self.last_request_at: float | None = None
        self.in_flight_since: float | None = None
        self.version_at_request: str | None = None
        self.last_rule: str | None = None  # "pr_auc" or "psi": which rule fired the last request

    def check(self, quality: Quality, psi: dict[str, float], serving: str | None, now: float) -> RetrainRequest | None:
        """A request if a rule fires and none is in flight or cooling down; else None."""
        self._settle(serving, now)
        if self.in_flight_since is not None:
            return None
        if self.last_request_at is not None and now - self.last_request_at < self.rules.cooldown_s:
            return None
        rule, reason, figures = self._fired(quality, psi)
        if rule is None:
            return None
        self.last_rule = rule
        self.last_request_at = self.in_flight_since = now
        self.version_at_request = serving
        return RetrainRequest(reason=reason, metrics=figures, requested_at=datetime.now(UTC), requested_by="monitor")

    def withdraw(self) -> None:
        """The last request never went out: forget it, so the next check may ask again."""
        self.last_request_at = self.in_flight_since = self.version_at_request = None

    @property
    def in_flight(self) -> bool:
        return self.in_flight_since is not None

    def _settle(self, serving: str | None, now: float) -> None:
        if self.in_flight_since is None:
            return
        if serving is not None and serving != self.version_at_request:
            self.in_flight_since = None  # a new version serves: the run is done
        elif now - self.in_flight_since > self.rules.timeout_s:
            self.in_flight_since = None  # the run never deployed; a later check may ask again

    def _fired(self, quality: Quality, psi: dict[str, float]) -> tuple[str | None, str, dict[str, float]]:
        """The rule that fired (None if none), the request's reason, and the figures that fired it."""
        rules = self.rules
        if quality.pr_auc is not None and quality.labels >= rules.min_labels and quality.pr_auc < rules.min_pr_auc:
            return ("pr_auc", f"PR-AUC {quality.pr_auc:.3f} over the last {quality.labels} labelled transactions is below "
                    f"{rules.min_pr_auc}", {"pr_auc": quality.pr_auc, "labels": float(quality.labels),
                                            "recall": quality.recall or 0.0, "precision": quality.precision or 0.0})
        if psi:
            feature, value = max(psi.items(), key=lambda item: item[1])
            if value > rules.max_psi:
                return "psi", f"PSI of {feature} is {value:.3f}, above {rules.max_psi}", {f"psi_{name}": v for name, v in psi.items()}
        return None, "", {}
