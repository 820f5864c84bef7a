"""Test-set statistics for the evaluate and report stages: pure functions of labels and scores.

Accuracy comes with a Wilson score interval; two models scored on the same reviews
are compared with McNemar's exact test, which looks only at the reviews exactly
one of them gets right (a binomial test of the discordant reviews against a fair coin).
The statistics are SciPy's and scikit-learn's; tests/test_metrics.py checks them
against published values.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn import metrics as sklearn_metrics

EPSILON = 1e-7  # Keras clips probabilities to [eps, 1 - eps] in binary cross-entropy


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default, no continuity correction)."""
    if trials <= 0:
        raise ValueError("the Wilson interval needs at least one trial")
    interval = stats.binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    ``only_first`` reviews were right under the first model alone, ``only_second``
    under the second alone; under the null hypothesis each discordant review is a
    fair coin.
    """
    if only_first + only_second == 0:
        return 1.0
    return float(stats.binomtest(only_first, only_first + only_second, 0.5).pvalue)


def discordant(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int]:
    """(reviews only model a gets right, reviews only model b gets right)."""
    return int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random positive outscores a random negative (ties count half)."""
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("ROC AUC needs both classes")
    return float(sklearn_metrics.roc_auc_score(labels, scores))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct score, from (0, 0) to (1, 1): exact.

    Collinear points are dropped (they draw the same curve), so a test split of 25,000 reviews
    gives a few thousand points, not one per review.
    """
    fpr, tpr, _ = sklearn_metrics.roc_curve(np.asarray(labels).astype(bool), scores, drop_intermediate=True)
    return fpr, tpr


def binary_crossentropy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean binary cross-entropy, as Keras computes it from probabilities."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1 - EPSILON)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def classification(labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> dict:
    """The test metrics of one model, in the project's metric names."""
    labels = np.asarray(labels).astype(bool)
    predicted = np.asarray(probabilities) >= threshold
    tp = int(np.sum(predicted & labels))
    tn = int(np.sum(~predicted & ~labels))
    fp = int(np.sum(predicted & ~labels))
    fn = int(np.sum(~predicted & labels))
    n = len(labels)
    low, high = wilson_interval(tp + tn, n)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "test/accuracy": (tp + tn) / n,
        "test/accuracy_ci_low": low,
        "test/accuracy_ci_high": high,
        "test/loss": binary_crossentropy(labels, probabilities),
        "test/precision": precision,
        "test/recall": recall,
        "test/f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "test/roc_auc": roc_auc(labels, probabilities),
        "test/tp": tp, "test/tn": tn, "test/fp": fp, "test/fn": fn,
        "test/reviews": n,
    }
