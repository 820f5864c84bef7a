"""Probes for the tutorial's claim 5 (SimpleRNN's gradients vanish over long sequences; LSTM's and GRU's do not).

Both run on validation reviews only, never on test:

- **Gradient reach**: the norm of the loss gradient with respect to the word vector at each input step.
  If gradients vanish, the early steps of the window receive almost nothing. The norms are divided by the
  mean of the last ``TAIL`` steps (not by one step, whose value is noisy: dividing by the last or the
  second-to-last step alone reversed the ranking of the models) and the *reach* is the median of that
  relative norm over the earlier half of the window. The train stage records the norms at
  initialisation, after the first epoch and for the kept model.
- **Memory**: a network that cannot carry a gradient back k steps cannot learn to use what it read k steps
  ago. The probe keeps the last ``content`` tokens of each review and places them so that they end
  ``distance`` steps before the end of the window, followed by ``distance`` filler tokens (padding, or the
  most frequent word, "the"). Accuracy against the distance shows how much the model still uses.
"""

from __future__ import annotations

import numpy as np

from pipeline import trim_heap
from pipeline.data import FIRST_WORD, PAD, Sequences, pad

TAIL = 10  # steps at the end of the window whose mean norm is the reference
SNAPSHOTS = ("init", "epoch1", "final")  # when the train stage measures the gradient
FILLERS = {"pad": PAD, "the": FIRST_WORD}  # index 3 is the most frequent training word, "the"


def gradient_rows(sequences: Sequences, maxlen: int, count: int) -> np.ndarray:
    """The first ``count`` reviews that fill a ``maxlen`` window (no step is padding); the longest if too few."""
    rows = np.flatnonzero(sequences.lengths >= maxlen)[:count]
    if len(rows) < count:  # tiny data: top up with the longest of the rest, some padding included
        rest = np.setdiff1d(np.argsort(-sequences.lengths, kind="stable"), rows, assume_unique=True)
        rows = np.concatenate([rows, rest[: count - len(rows)]])
    return rows


# Reviews differentiated at once. Backpropagating through a recurrent layer keeps every step's activations:
# all 500 probe reviews of a maxlen-500 LSTM at once added 300 MB to the training process's peak, which it
# kept (docs/measurements.md); 125 at a time add 100 MB for 1 s more per probe, and give the same norms.
PROBE_BATCH = 125


def input_gradient_norms(model, x: np.ndarray, y: np.ndarray, batch: int = PROBE_BATCH) -> np.ndarray:
    """Mean L2 norm over reviews of d(loss)/d(word vector) at each time step: shape (maxlen,).

    The embedding is applied first and watched; the other layers run on it in inference mode. Each
    review's own loss is differentiated (a sum, not a mean), so the norms do not shrink with the batch,
    and ``batch`` reviews at a time give the norms of all at once. The model is left exactly as it was,
    its random state included: probing does not change the training that follows.
    """
    # A recurrent layer with dropout draws from its seed generator even in inference mode: without this,
    # each probe would shift the dropout masks of the training that follows (and batching would too).
    seeds = [(v, v.value) for v in model.variables if "seed_generator" in v.path]
    try:
        total = sum(_norm_sums(model, x[start : start + batch], y[start : start + batch])
                    for start in range(0, len(x), batch))
    finally:
        for variable, value in seeds:
            variable.assign(value)
        trim_heap()  # backpropagating through every step freed large blocks
    return (total / len(x)).astype(np.float32)


def _norm_sums(model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per time step, the sum over these reviews of the gradient norm (float64)."""
    import keras
    from keras import ops

    embedding, *rest = model.layers
    vectors = embedding(ops.convert_to_tensor(x))
    target = ops.convert_to_tensor(y[:, None].astype("float32"))

    def loss_of(hidden):
        for layer in rest:
            hidden = layer(hidden, training=False)
        return ops.sum(keras.losses.binary_crossentropy(target, hidden))

    gradient = _gradient(loss_of, vectors)
    return ops.convert_to_numpy(ops.norm(gradient, axis=-1)).astype(np.float64).sum(axis=0)


def _gradient(function, at):
    """The gradient of a scalar ``function`` at ``at``, with the running Keras backend's own autodiff."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.grad(function)(at)
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(at)
        value = function(at)
    return tape.gradient(value, at)


def relative(norms: np.ndarray) -> np.ndarray:
    """Norms divided by the mean of the last ``TAIL`` steps (the end of the window, nearest the loss).

    A mean, not a median: a model may put its whole gradient on the last few steps, where a median is 0.
    """
    norms = np.asarray(norms, dtype=np.float64)
    reference = float(np.mean(norms[-TAIL:]))
    if not reference > 0:
        return np.full_like(norms, np.nan)
    return norms / reference


def reach(norms: np.ndarray) -> float:
    """Median relative gradient norm over the earlier half of the window: near 0 when gradients vanish."""
    values = relative(norms)
    return float(np.median(values[: max(1, len(values) // 2)]))


def relative_curves(norms: dict[str, dict], models: list[str]) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """Relative gradient per step for each model and snapshot, shape (seeds, steps), over the last steps that
    every model has (the shortest window); the relative norm depends only on the window's end, so it is the same.
    ``norms``: model -> seed -> the train stage's gradients table (steps_before_end and a column per snapshot)."""
    # Earliest step first, as the train stage writes them; sorted again so the order is not assumed.
    frames = {m: [f.sort_values("steps_before_end", ascending=False) for f in norms[m].values()]
              for m in models if norms.get(m)}
    if not frames:
        return np.arange(0), {}
    steps = min(len(frame) for per_seed in frames.values() for frame in per_seed)
    curves = {model: {snapshot: np.array([relative(f[snapshot].to_numpy())[-steps:] for f in per_seed])
                      for snapshot in per_seed[0].columns if snapshot != "steps_before_end"}
              for model, per_seed in frames.items()}
    return np.arange(steps - 1, -1, -1), curves


def memory_inputs(sequences: Sequences, maxlen: int, content: int, distance: int, filler: int) -> np.ndarray:
    """``(n, maxlen)``: each review's last ``content`` tokens, then ``distance`` filler tokens, padding before.

    Every review keeps exactly the same content at every distance; only where it sits in the window changes.
    """
    if content + distance > maxlen:
        raise ValueError(f"memory probe: content {content} + distance {distance} exceeds maxlen {maxlen}")
    x = np.full((len(sequences), maxlen), PAD, dtype=np.int32)
    end = maxlen - distance
    x[:, end - content : end] = pad(sequences, content, "pre", "pre")
    x[:, end:] = filler
    return x


def memory_rows(sequences: Sequences, content: int, count: int) -> np.ndarray:
    """The first ``count`` reviews with at least ``content`` tokens after the start marker (no padding inside)."""
    return np.flatnonzero(sequences.lengths > content)[:count]


def memory_accuracy(model, sequences: Sequences, maxlen: int, content: int, distances, batch_size: int = 512
                    ) -> list[dict]:
    """Accuracy at each distance for each filler: rows of {filler, distance, accuracy}."""
    labels = sequences.labels.astype(bool)
    rows = []
    for filler, token in FILLERS.items():
        for distance in distances:
            x = memory_inputs(sequences, maxlen, content, distance, token)
            probabilities = model.predict(x, batch_size=batch_size, verbose=0).reshape(-1)
            rows.append({"filler": filler, "distance": int(distance),
                         "accuracy": float(np.mean((probabilities >= 0.5) == labels))})
    return rows
