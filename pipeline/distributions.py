"""A score distribution over seeds, summarised: n, mean, sd and the t-interval of the mean; p-values in words."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95  # of every t-interval


def format_p(p: float) -> str:
    """A p-value for people: below 1e-300 it is shown as a bound (floats run out there)."""
    return "< 1e-300" if p < 1e-300 else f"{p:.2g}"


def p_clause(p: float) -> str:
    """"p = 0.012" or "p < 1e-300"."""
    shown = format_p(p)
    return f"p {shown}" if shown.startswith("<") else f"p = {shown}"


def finite_numbers(values: Sequence[float], what: str) -> np.ndarray:
    """``values`` as a 1-d float array, or a ValueError naming ``what`` when they are not finite numbers."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a list of numbers, got {values!r}") from None
    if array.ndim != 1 or array.size == 0 or not np.isfinite(array).all():
        raise ValueError(f"{what}: expected a non-empty list of finite numbers, got {values!r}")
    return array


def describe(values: Sequence[float]) -> dict:
    """n, mean, sd (ddof=1), min, max and the 95% t-interval of the mean; sd and interval are None when n < 2."""
    array = finite_numbers(values, "values")
    n, mean = array.size, float(array.mean())
    sd = ci_low = ci_high = None
    if n >= 2:
        sd = float(array.std(ddof=1))
        # scipy answers nan for a zero scale; identical values leave no doubt about their mean.
        ci_low, ci_high = (mean, mean) if sd == 0 else (
            float(x) for x in stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=sd / math.sqrt(n)))
    return {"n": n, "mean": mean, "sd": sd, "min": float(array.min()), "max": float(array.max()),
            "ci_low": ci_low, "ci_high": ci_high}
