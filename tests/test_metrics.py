"""The test-set statistics against published and independently computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.metrics import binary_crossentropy, classification, mcnemar_exact, roc_auc, roc_curve, wilson_interval


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson score, no correction).
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (8, 10, 0.4902, 0.9433)],
)
def test_wilson_interval_matches_published_values(successes, trials, low, high):
    assert wilson_interval(successes, trials) == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_needs_trials():
    with pytest.raises(ValueError, match="at least one trial"):
        wilson_interval(0, 0)


@pytest.mark.parametrize(
    ("only_first", "only_second", "p"),
    [(1, 6, 0.125), (6, 1, 0.125), (0, 0, 1.0), (5, 5, 1.0), (0, 10, 2 / 1024)],  # 2 * P(X <= k), X ~ B(n, 1/2)
)
def test_mcnemar_exact_small_counts(only_first, only_second, p):
    assert mcnemar_exact(only_first, only_second) == pytest.approx(p)


def test_mcnemar_exact_agrees_with_scipy_binomial_test_at_test_set_sizes():
    stats = pytest.importorskip("scipy.stats")
    for first, second in [(1000, 1100), (310, 402), (2400, 2410)]:
        expected = stats.binomtest(min(first, second), first + second, 0.5).pvalue
        assert mcnemar_exact(first, second) == pytest.approx(expected, rel=1e-9)


def test_roc_auc_known_values_and_ties():
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75  # scikit-learn's doc example
    assert roc_auc(np.array([0, 1, 0, 1]), np.full(4, 0.5)) == 0.5
    assert roc_auc(np.array([0, 0, 1]), np.array([0.1, 0.2, 0.9])) == 1.0
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(np.array([1, 1]), np.array([0.2, 0.3]))


def test_roc_curve_is_exact_from_the_origin_to_the_corner():
    labels = np.array([0, 0, 1, 1])
    fpr, tpr = roc_curve(labels, np.array([0.1, 0.4, 0.35, 0.8]))  # scikit-learn's doc example, counted by hand:
    assert fpr.tolist() == [0, 0, 0.5, 0.5, 1] and tpr.tolist() == [0, 0.5, 0.5, 1, 1]  # a step at every score
    rng = np.random.default_rng(0)
    labels, scores = rng.integers(0, 2, 500), rng.random(500)
    fpr, tpr = roc_curve(labels, scores)
    assert (fpr[0], tpr[0]) == (0, 0) and (fpr[-1], tpr[-1]) == (1, 1)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    # Exact: its area is the AUC (trapezoids), which no fixed grid of thresholds gives.
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(labels, scores), abs=1e-12)


def test_binary_crossentropy_equals_keras():
    import keras

    labels = np.array([0, 1, 1, 0, 1], dtype=np.float32)
    probabilities = np.array([0.1, 0.9, 0.4, 0.0, 1.0], dtype=np.float32)
    expected = float(keras.ops.mean(keras.losses.binary_crossentropy(labels[:, None], probabilities[:, None])))
    assert binary_crossentropy(labels, probabilities) == pytest.approx(expected, rel=1e-5)


def test_classification_counts_and_scores():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    probabilities = np.array([0.9, 0.8, 0.2, 0.1, 0.6, 0.3, 0.4, 0.7])
    metrics = classification(labels, probabilities)
    assert (metrics["test/tp"], metrics["test/fn"], metrics["test/fp"], metrics["test/tn"]) == (3, 1, 1, 3)
    assert metrics["test/accuracy"] == 0.75 and metrics["test/precision"] == 0.75 and metrics["test/recall"] == 0.75
    assert metrics["test/f1"] == pytest.approx(0.75)
    low, high = metrics["test/accuracy_ci_low"], metrics["test/accuracy_ci_high"]
    assert low < 0.75 < high and math.isclose(low, wilson_interval(6, 8)[0])
