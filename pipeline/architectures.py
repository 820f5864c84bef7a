"""The architectures by name, and which settings each one has, without importing Keras.

The builders are in ``pipeline.models``; this module holds the facts that parameter checks,
the tuning space and the report tables need, so that none of them loads Keras to know them.
"""

from __future__ import annotations

NAMES = ("dense", "simplernn", "lstm", "gru")  # pipeline.models.ARCHITECTURES builds each
# Recurrent architectures: they have units, and their layers take batches of any length (bucketing).
RECURRENT = frozenset({"simplernn", "lstm", "gru"})


# Settings of the recurrent layer: the dense baseline has none of them.
RECURRENT_SETTINGS = frozenset({"units", "bidirectional", "pooling", "masking"})


def uses(architecture: str, setting: str) -> bool:
    """Whether ``setting`` changes a model of ``architecture``: the dense baseline has no recurrent layer."""
    return setting not in RECURRENT_SETTINGS or architecture in RECURRENT


def bucketed(bucketing: bool, architecture: str) -> bool:
    """Whether training feeds length buckets: ``train.bucketing``, for recurrent architectures only."""
    return bucketing and architecture in RECURRENT
