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
