"""Windowed quality (labels joined to scores) and drift (PSI of served features and scores).

Labels arrive hours to days after their score, and some never do, so the join
keeps each side waiting for the other for at most ``ttl_s`` and at most
``max_waiting`` entries (the oldest go first): memory stays bounded whatever
the label rate. A joined pair enters the quality window of the last ``window``
labelled transactions. Precision and recall are at the threshold each score
carried (its decision), PR-AUC is scikit-learn's average precision.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, precision_score, recall_score

from fraud.drift import SCORE, Reference
from fraud.events import Label, Score


@dataclass(frozen=True, slots=True)
class Labelled:
    """A score and its outcome."""

    transaction_id: str
    score: float
    flagged: bool
    is_fraud: bool
    model_version: str


class Join:
    """Scores and labels by transaction_id, each side waiting for the other at most ``ttl_s``."""

    def __init__(self, ttl_s: float, max_waiting: int = 1_000_000) -> None:
        self.ttl_s, self.max_waiting = ttl_s, max_waiting
        self._scores: OrderedDict[str, tuple[float, Score]] = OrderedDict()
        self._labels: OrderedDict[str, tuple[float, Label]] = OrderedDict()

    def add_score(self, score: Score, now: float) -> Labelled | None:
        """The labelled pair if its label came first; else the score waits."""
        waiting = self._labels.pop(score.transaction_id, None)
        if waiting is not None:
            return _pair(score, waiting[1])
        self._wait(self._scores, score.transaction_id, (now, score), now)
        return None

    def add_label(self, label: Label, now: float) -> Labelled | None:
        """The labelled pair if its score came first; else the label waits."""
        waiting = self._scores.pop(label.transaction_id, None)
        if waiting is not None:
            return _pair(waiting[1], label)
        self._wait(self._labels, label.transaction_id, (now, label), now)
        return None

    @property
    def waiting(self) -> int:
        return len(self._scores) + len(self._labels)

    def _wait(self, side: OrderedDict, key: str, entry: tuple, now: float) -> None:
        side[key] = entry
        side.move_to_end(key)
        for other in (self._scores, self._labels):
            while other and (now - next(iter(other.values()))[0] > self.ttl_s):
                other.popitem(last=False)
        while len(side) > self.max_waiting:
            side.popitem(last=False)


def _pair(score: Score, label: Label) -> Labelled:
    return Labelled(score.transaction_id, score.score, score.decision == "fraud", label.is_fraud, score.model_version)


@dataclass(frozen=True)
class Quality:
    """The window's figures; PR-AUC, precision and recall are None until the window holds both classes."""

    labels: int
    frauds: int
    precision: float | None
    recall: float | None
    pr_auc: float | None


class QualityWindow:
    """The last ``size`` labelled transactions."""

    def __init__(self, size: int) -> None:
        self.rows: deque[Labelled] = deque(maxlen=size)

    def add(self, row: Labelled) -> None:
        self.rows.append(row)

    def quality(self, version: str | None = None) -> Quality:
        """Precision and recall at the served decisions, and PR-AUC of the scores, over the window.

        With ``version``, over the window's rows that this model version scored only.
        """
        rows = [row for row in self.rows if version is None or row.model_version == version]
        truth = np.array([row.is_fraud for row in rows], dtype=bool)
        frauds = int(truth.sum())
        if frauds == 0 or frauds == len(truth):
            return Quality(len(truth), frauds, None, None, None)
        flagged = np.array([row.flagged for row in rows], dtype=bool)
        scores = np.array([row.score for row in rows])
        return Quality(len(truth), frauds, float(precision_score(truth, flagged, zero_division=0.0)),
                       float(recall_score(truth, flagged)), float(average_precision_score(truth, scores)))


class ServedWindow:
    """The last ``size`` scores: alert rate, and each feature's and the score's values for PSI."""

    def __init__(self, size: int) -> None:
        self.scores: deque[Score] = deque(maxlen=size)

    def add(self, score: Score) -> None:
        self.scores.append(score)

    def alert_rate(self) -> float | None:
        """Share of the window's scores flagged as fraud."""
        if not self.scores:
            return None
        return sum(score.decision == "fraud" for score in self.scores) / len(self.scores)

    def scored_by(self, version: str | None) -> list[Score]:
        """The window's scores by ``version`` (all of them if None)."""
        return [score for score in self.scores if version is None or score.model_version == version]

    def psi(self, reference: Reference, version: str | None = None) -> dict[str, float]:
        """PSI of every feature (and the score) served in the window against ``reference``.

        With ``version``, of the scores that version made only: another model's scores
        fall differently into this one's bins, which is not drift.
        """
        scores = self.scored_by(version)
        if not scores:
            return {}
        columns = {name: np.array([score.features.get(name, np.nan) for score in scores])
                   for name in reference.histograms if name != SCORE}
        columns = {name: values[np.isfinite(values)] for name, values in columns.items()}
        columns[SCORE] = np.array([score.score for score in scores])
        return reference.psi(columns)
