"""PSI against the training reference: ~0 for the same population, large for a shifted one; the JSON round-trips."""

from __future__ import annotations

import numpy as np

from fraud.drift import SCORE, Histogram, Reference, psi


def _columns(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    return {"amount": rng.lognormal(3.0 + shift, 1.0, n), "online_order": (rng.random(n) < 0.3 + shift / 4).astype(float),
            SCORE: rng.beta(1.0 + 4 * shift, 20.0, n)}


def test_the_same_population_is_stable_and_a_shifted_one_is_not() -> None:
    rng = np.random.default_rng(7)
    reference = Reference.from_samples(_columns(rng, 20_000))
    same = reference.psi(_columns(rng, 5_000))
    shifted = reference.psi(_columns(rng, 5_000, shift=1.0))
    assert max(same.values()) < 0.02, same
    assert min(shifted.values()) > 0.25, shifted


def test_a_binary_feature_gets_its_two_values_as_bins() -> None:
    histogram = Histogram.of(np.array([0.0] * 70 + [1.0] * 30), bins=10)
    counts = histogram.counts(np.array([0.0, 1.0, 1.0]))
    assert counts[np.nonzero(counts)].tolist() == [1, 2]
    assert sorted(f for f in histogram.fractions if f) == [0.3, 0.7]


def test_psi_matches_its_formula_and_an_empty_sample_is_no_drift() -> None:
    expected, observed = np.array([0.5, 0.5]), np.array([80, 20])
    assert psi(expected, observed) == np.sum((np.array([0.8, 0.2]) - 0.5) * np.log(np.array([0.8, 0.2]) / 0.5))
    assert psi(expected, np.array([0, 0])) == 0.0


def test_the_reference_survives_its_json() -> None:
    reference = Reference.from_samples(_columns(np.random.default_rng(1), 1_000))
    assert Reference.model_validate_json(reference.model_dump_json()) == reference
