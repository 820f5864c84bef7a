"""How a model trained on length buckets reads reviews: each padded only to its own length.

With ``train.bucketing: true`` (the default) a recurrent model is built for any input length and
trained on batches of similar-length reviews, each batch padded to its longest member rounded up to
the next of at most ``BUCKETS`` widths (multiples of :func:`step`). Every place that reads reviews
with such a model afterwards (validation during training, evaluate on the test split, the served
model) pads each review the same way, to its own *width*: its length (at most maxlen) rounded up to
a multiple of the step. A review's probability then depends on the review alone, never on which
other reviews share its batch or on maxlen padding the model never saw in training. Reviews of one
width are read together, in batches of at most ``batch_size``. NumPy only (the served model imports
it).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# At most this many widths per maxlen. JAX compiles a training and a prediction step for every width a
# model sees, about a second each on this project's CPU: with a width every 8 steps (63 widths at maxlen
# 500) the first epoch took 150 s against 14 s for the next ones, eating most of what bucketing saves.
BUCKETS = 8
ALIGN = 8  # widths are multiples of this many steps


def step(maxlen: int) -> int:
    """Distance between two widths for ``maxlen``: a multiple of ``ALIGN``, at most ``BUCKETS`` widths in all
    (64 at maxlen 500, 32 at 200, 8 up to 64)."""
    return ALIGN * max(1, -(-maxlen // (BUCKETS * ALIGN)))


def width(length: int | np.ndarray, maxlen: int) -> int | np.ndarray:
    """Columns a review of ``length`` tokens is padded to: rounded up to a multiple of :func:`step`, at most
    maxlen, at least 1."""
    unit = step(maxlen)
    return np.clip(-(-np.asarray(length) // unit) * unit, 1, maxlen)


def columns(width: int, maxlen: int, padding: str) -> slice:
    """The columns of a ``(n, maxlen)`` padded array that hold a ``width``-wide batch: the last ``width``
    for pre-padding, the first for post-padding. Every review keeps exactly its tokens."""
    return slice(maxlen - width, None) if padding == "pre" else slice(0, width)


def by_width(lengths: np.ndarray, maxlen: int, batch_size: int) -> list[np.ndarray]:
    """Row indices in batches of reviews of one width each (at most ``batch_size``), narrowest first."""
    widths = width(np.minimum(lengths, maxlen), maxlen)
    order = np.argsort(widths, kind="stable")
    batches = []
    for group in np.split(order, np.flatnonzero(np.diff(widths[order])) + 1):
        batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    return [batch for batch in batches if len(batch)]


def predict(predict_batch: Callable[[np.ndarray], np.ndarray], x: np.ndarray, lengths: np.ndarray, padding: str,
            batch_size: int) -> np.ndarray:
    """Probabilities for the rows of ``x`` (padded to maxlen), each review read at its own width, in row order."""
    maxlen = x.shape[1]
    probabilities = np.empty(len(x), dtype=np.float64)
    for rows in by_width(lengths, maxlen, batch_size):
        cut = int(width(int(min(lengths[rows[0]], maxlen)), maxlen))
        probabilities[rows] = np.asarray(predict_batch(x[rows, columns(cut, maxlen, padding)])).reshape(-1)
    return probabilities
