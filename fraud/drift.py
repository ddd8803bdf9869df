"""Drift of served features and scores against the training reference: histograms and PSI.

At training time `Reference.from_samples` bins each feature (and the model's
scores) at the quantiles of the training data, and the reference travels inside
the ONNX file (metadata key ``reference``), so every registered version carries
its own. Live, the monitor counts the served values into the same bins and
compares with `psi`:

    PSI = sum over bins of (observed - expected) * ln(observed / expected)

with both sides as fractions. The usual reading: below 0.1 stable, 0.1 to 0.25
a shift worth a look, above 0.25 a population that has changed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

REFERENCE_KEY = "reference"  # the ONNX metadata key
SCORE = "score"  # the score's histogram sits beside the features', under this name
_EPSILON = 1e-4  # an empty bin on either side would make PSI infinite


class Histogram(BaseModel):
    """Inner bin edges (a value v falls in bin ``searchsorted(edges, v, side="right")``) and each bin's fraction."""

    model_config = ConfigDict(frozen=True)

    edges: list[float]
    fractions: list[float] = Field(min_length=1)

    @classmethod
    def of(cls, values: np.ndarray, bins: int) -> Histogram:
        """Bins at the quantiles of ``values`` (ties merged, so a binary feature gets two bins)."""
        finite = values[np.isfinite(values)]
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if finite.size else np.array([])
        return cls(edges=edges.tolist(), fractions=_fractions(finite, edges).tolist())

    def counts(self, values: np.ndarray) -> np.ndarray:
        """How many of ``values`` fall in each bin."""
        return np.bincount(np.searchsorted(self.edges, values, side="right"), minlength=len(self.fractions))

    def psi(self, values: np.ndarray) -> float:
        """PSI of ``values`` against this histogram."""
        return psi(np.asarray(self.fractions), self.counts(values))


class Reference(BaseModel):
    """The training distribution of every feature and of the score, as saved with a model version."""

    model_config = ConfigDict(frozen=True)

    histograms: dict[str, Histogram]
    rows: int = Field(ge=1, description="training rows the histograms were made from")

    @classmethod
    def from_samples(cls, columns: Mapping[str, np.ndarray], bins: int = 10) -> Reference:
        """One histogram per column (features by name, and the scores under `SCORE`)."""
        rows = min(len(values) for values in columns.values())
        return cls(histograms={name: Histogram.of(np.asarray(values, dtype=float), bins) for name, values in columns.items()},
                   rows=rows)

    def psi(self, columns: Mapping[str, np.ndarray]) -> dict[str, float]:
        """PSI of every column that has a reference histogram."""
        return {name: self.histograms[name].psi(np.asarray(values, dtype=float))
                for name, values in columns.items() if name in self.histograms and len(values)}


def psi(expected: np.ndarray, observed_counts: np.ndarray) -> float:
    """Population stability index of observed counts against expected fractions (same bins)."""
    total = observed_counts.sum()
    if total == 0:
        return 0.0
    observed = np.clip(observed_counts / total, _EPSILON, None)
    expected = np.clip(expected, _EPSILON, None)
    return float(np.sum((observed - expected) * np.log(observed / expected)))


def _fractions(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(1, counts.sum())
