"""Test-set statistics for the evaluate and report stages: pure functions of labels and scores.

NumPy and the standard library only, so each can be checked against known values.
Accuracy comes with a Wilson score interval; two models scored on the same reviews
are compared with McNemar's exact test, which looks only at the reviews exactly
one of them gets right.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

Z_95 = 1.959963984540054  # two-sided 95% quantile of the standard normal
EPSILON = 1e-7  # Keras clips probabilities to [eps, 1 - eps] in binary cross-entropy


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if trials <= 0:
        raise ValueError("the Wilson interval needs at least one trial")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    ``only_first`` reviews were right under the first model alone, ``only_second``
    under the second alone; under the null hypothesis each discordant review is a
    fair coin. Computed with exact integers, so large counts lose no precision.
    """
    n = only_first + only_second
    if n == 0:
        return 1.0
    k = min(only_first, only_second)
    tail = Fraction(sum(math.comb(n, i) for i in range(k + 1)), 2**n)
    return float(min(Fraction(1), 2 * tail))


def discordant(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int]:
    """(reviews only model a gets right, reviews only model b gets right)."""
    return int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random positive outscores a random negative (ties count half)."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("ROC AUC needs both classes")
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def roc_curve(labels: np.ndarray, scores: np.ndarray, points: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at ``points`` evenly spaced thresholds from 1 to 0."""
    labels = np.asarray(labels).astype(bool)
    thresholds = np.linspace(1.0, 0.0, points)
    predicted = np.asarray(scores)[None, :] >= thresholds[:, None]
    tpr = (predicted & labels).sum(axis=1) / max(1, labels.sum())
    fpr = (predicted & ~labels).sum(axis=1) / max(1, (~labels).sum())
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
