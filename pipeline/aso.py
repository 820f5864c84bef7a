"""Almost Stochastic Order (Dror et al. 2019) through deepsig, for the claims' comparisons (pipeline.claims).

deepsig's own quantile function is the slow part of its test; :func:`quantile_function` returns the same values
for all p at once, and deepsig is imported without the tensor libraries it only needs for their tensors.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

ASO_ITERATIONS = 200  # bootstrap iterations for sigma (deepsig defaults to 1000): 0.01 s a call with quantile_function


def aso(a: Sequence[float], b: Sequence[float], seed: int) -> float:
    """deepsig's eps_min for "a is almost stochastically larger than b"; deterministic for a given seed."""
    deepsig_aso = _deepsig_aso()
    state = np.random.get_state()  # deepsig reseeds numpy's global generator: put it back as it was
    original = deepsig_aso.get_quantile_function
    deepsig_aso.get_quantile_function = quantile_function  # the same values, computed for all p at once
    try:
        with warnings.catch_warnings():
            # Raised for every bootstrap sample whose two sides are identical, common with three seeds;
            # deepsig then counts the violation ratio as 0.5, which is the right answer.
            warnings.filterwarnings("ignore", message="Division by zero encountered in violation ratio")
            return float(deepsig_aso.aso(list(map(float, a)), list(map(float, b)), seed=seed, num_jobs=1,
                                         show_progress=False, num_bootstrap_iterations=ASO_ITERATIONS))
    finally:
        deepsig_aso.get_quantile_function = original
        np.random.set_state(state)


def quantile_function(scores: Sequence[float]) -> Callable[[np.ndarray], np.ndarray]:
    """deepsig's empirical quantile function (``deepsig.aso.get_quantile_function``), vectorised.

    For each p it returns the ceil(n * p)-th smallest score, the first and last for p beyond them, as deepsig
    does; deepsig computes it one p at a time through ``np.vectorize``, sorting the scores for each, which
    was two thirds of the report stage's time (docs/measurements.md). The same values bit for bit
    (tests/test_claims.py), so the same eps_min.
    """
    cdf = np.sort(scores)
    num = len(scores)

    def quantile(p: np.ndarray) -> np.ndarray:
        index = np.ceil(num * np.asarray(p)).astype(int)
        return cdf[np.clip(index - 1, 0, num - 1)]

    return quantile


def _deepsig_aso():
    """``deepsig.aso``, imported without the tensor libraries it would convert from (we pass lists).

    deepsig imports TensorFlow, PyTorch and JAX, when installed, only to accept their tensors: seconds of the
    report stage for nothing. Those not imported yet are marked missing while deepsig is imported, then
    unmarked, so a later ``import tensorflow`` works as usual.
    """
    import importlib
    import sys

    if "deepsig.aso" in sys.modules:
        return sys.modules["deepsig.aso"]
    blocked = [name for name in ("tensorflow", "torch", "jax") if name not in sys.modules]
    sys.modules.update(dict.fromkeys(blocked))
    try:
        return importlib.import_module("deepsig.aso")  # the module: deepsig's package binds the name to its function
    finally:
        for name in blocked:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
