"""The architectures compared, one small builder each, as in the tutorial.

Every builder starts with ``Embedding(num_words, embedding_dim)`` and ends in
one sigmoid unit (binary cross-entropy). Builders take keyword arguments so
the train and tune stages call them the same way. A new architecture is one
function plus one entry in ``ARCHITECTURES``.

``maxlen`` fixes the input length, as the tutorial's models have it once
built. ``maxlen=None`` builds a recurrent model for sequences of any length,
for length-bucketed batches; the dense baseline flattens the embedding and
always needs a fixed ``maxlen``. Recurrent layers
keep Keras' default activations and ``recurrent_dropout=0`` so Keras can
use cuDNN's fused kernels on a GPU (on JAX and on TensorFlow); ``dropout`` applies to their inputs.
On a CPU, GRU layers run Keras' generic scan (:func:`fused_kernels`), built or loaded.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import keras
from keras import layers

from pipeline.architectures import NAMES
from pipeline.stage import UserError

OPTIMIZERS = ("rmsprop", "adam", "sgd")


def _keep_tensorflow_out() -> None:
    """On JAX, keep Keras from importing TensorFlow, which the cpu extra installs for the other backend.

    ``keras.utils.set_random_seed`` (to seed TensorFlow's generator too) and the serializer behind
    ``model.save()`` (to recognise ``tf.TensorShape`` and the like) ask Keras' lazy ``tensorflow`` module
    whether TensorFlow is importable, and so import all of it: 0.5 GB more in every process (measured: 584 MB
    before ``mlflow.keras.log_model``, 1,088 MB after), for a generator and objects a JAX model never uses.
    Marked unavailable while nothing has imported TensorFlow; pipeline.training imports this module first.
    """
    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        return
    try:
        from keras.src.utils import module_utils

        module_utils.tensorflow._available = False
    except (ImportError, AttributeError):  # another Keras layout: it only costs memory
        pass


_keep_tensorflow_out()


def fused_kernels() -> bool | str:
    """``use_cudnn`` for GRU layers: Keras' default ("auto") where JAX has a GPU, else False.

    On a CPU, Keras' JAX backend still runs GRU through its fused path (every step's input projection
    computed up front, then a scan), which is slower there than the generic scan over the cell, for the same
    model to float rounding (numbers: docs/measurements.md). LSTM takes the generic scan on a CPU anyway; on
    TensorFlow both fall back to it without cuDNN.
    """
    if keras.backend.backend() != "jax":
        return "auto"
    import jax

    return "auto" if jax.default_backend() == "gpu" else False


def dense(*, num_words: int, maxlen: int | None, embedding_dim: int, dropout: float = 0.0, **_) -> keras.Model:
    """The fully connected baseline: Embedding, Flatten, Dense(1, sigmoid). ``units`` is unused."""
    if maxlen is None:
        raise ValueError("the dense baseline flattens the embedding: it needs a fixed maxlen")
    return keras.Sequential(
        [
            keras.Input(shape=(maxlen,), dtype="int32"),
            layers.Embedding(num_words, embedding_dim),
            layers.Flatten(),
            layers.Dropout(dropout),
            layers.Dense(1, activation="sigmoid"),
        ],
        name="dense",
    )


def _recurrent(name: str, layer: type, head: Callable[[], list], *, num_words: int, maxlen: int | None,
               embedding_dim: int, units: int, dropout: float = 0.0, bidirectional: bool = False,
               pooling: str = "last", masking: bool = False) -> keras.Model:
    """Embedding, one recurrent layer, then ``head()``. The defaults are the tutorial's model.

    ``bidirectional`` wraps the layer in ``Bidirectional`` (concatenated directions); ``pooling`` "max" or
    "mean" summarises every time step's output instead of taking the last state; ``masking`` makes the
    embedding mark padding (index 0) so the recurrent layer skips it. Mean pooling averages unmasked steps
    only; Keras' max pooling ignores the mask (padded steps count as zero outputs). Layers are created in
    model order: each draws its initial weights' seed when created, so the order keeps a seed's model.
    """
    return keras.Sequential(
        [
            keras.Input(shape=(maxlen,), dtype="int32"),
            layers.Embedding(num_words, embedding_dim, mask_zero=masking),
            _maybe_bidirectional(layer(units, dropout=dropout, return_sequences=pooling != "last"), bidirectional),
            *POOLING[pooling](),
            *head(),
            layers.Dense(1, activation="sigmoid"),
        ],
        name=name,
    )


def _maybe_bidirectional(layer: keras.layers.Layer, bidirectional: bool) -> keras.layers.Layer:
    return layers.Bidirectional(layer) if bidirectional else layer


POOLING: dict[str, Callable[[], list]] = {
    "last": lambda: [],
    "max": lambda: [layers.GlobalMaxPooling1D()],
    "mean": lambda: [layers.GlobalAveragePooling1D()],
}


def simplernn(**settings) -> keras.Model:
    return _recurrent("simplernn", layers.SimpleRNN, lambda: [layers.Dense(32, activation="relu")], **settings)


def lstm(**settings) -> keras.Model:
    return _recurrent("lstm", layers.LSTM, lambda: [], **settings)


def gru(**settings) -> keras.Model:
    # The tutorial ends its GRU with Dense(1) and no activation while training with
    # binary cross-entropy, which expects probabilities: a bug. We use a sigmoid.
    return _recurrent("gru", layers.GRU, lambda: [], **settings)


ARCHITECTURES = {"dense": dense, "simplernn": simplernn, "lstm": lstm, "gru": gru}
assert tuple(ARCHITECTURES) == NAMES, "pipeline/architectures.py names the same architectures"


def build(architecture: str, *, optimizer: str, learning_rate: float, **hyperparameters) -> keras.Model:
    """Build and compile one model: binary cross-entropy, accuracy, as in the tutorial. Accuracy is a weighted
    metric (the same number without sample weights) so that the filler rows of bucketed validation batches,
    weight 0, count for nothing (pipeline.training._Batches)."""
    model = _choose_kernels(ARCHITECTURES[architecture](**hyperparameters))
    model.compile(
        optimizer=keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": learning_rate}}),
        loss="binary_crossentropy",
        weighted_metrics=["accuracy"],
    )
    return model


def load(path: Path) -> keras.Model:
    """A saved model, in Keras' safe mode: a file that would run arbitrary code (a Lambda layer) is refused."""
    try:
        model = keras.models.load_model(path, safe_mode=True)
    except FileNotFoundError:
        raise UserError(f"{path}: model missing; run its train or tune stage first") from None
    except (ValueError, TypeError, OSError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise UserError(f"{path}: not a model this project can load safely ({reason}); "
                        "only .keras files saved by the train and tune stages are accepted") from None
    return _choose_kernels(model)  # Keras does not save use_cudnn: score on the path the model trained on


def _choose_kernels(model: keras.Model) -> keras.Model:
    """Set :func:`fused_kernels` on every GRU layer, both directions of a Bidirectional one included (its
    backward copy is rebuilt from a config without ``use_cudnn``)."""
    for layer in model.layers:
        wrapped = isinstance(layer, layers.Bidirectional)
        for inner in (layer.forward_layer, layer.backward_layer) if wrapped else (layer,):
            if isinstance(inner, layers.GRU):
                inner.use_cudnn = fused_kernels()
    return model
