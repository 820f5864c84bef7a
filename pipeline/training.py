"""Fitting one model: the code the train stage and every tuning trial share.

One Keras callback, :class:`EpochLogger`, is the single logging path: after
each epoch it appends a row to the history (the DVC plots file), logs the
same values to the active MLflow run, and hands the row to an optional hook
(the tuner's pruner). Metric names are the project's: ``train/accuracy``,
``train/loss``, ``val/accuracy``, ``val/loss``, ``epoch/seconds``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import keras
import mlflow
import numpy as np

from pipeline import buckets, models, trim_heap  # noqa: F401  (models keeps TensorFlow out of JAX processes)
from pipeline.architectures import bucketed, uses
from pipeline.config import Params
from pipeline.data import Sequences, pad

KEEP = ("best", "last")  # which epoch's weights a run keeps (params train.keep)
HISTORY_COLUMNS = ("epoch", "train/accuracy", "train/loss", "val/accuracy", "val/loss", "epoch/seconds")
BUCKET_POOL = 50  # batches per pool that are formed from length-sorted reviews


class EpochLogger(keras.callbacks.Callback):
    """Per epoch: a history row, MLflow metrics (step = epoch, from 1), and ``on_epoch(row)``.

    It also keeps a copy of the weights of the epoch with the highest validation accuracy (the
    first such epoch), as ``ModelCheckpoint(monitor="val_accuracy", save_best_only=True)`` would,
    without writing files: ``best_weights``. With ``patience`` > 0 it stops training after that many
    epochs without a higher validation accuracy, as ``EarlyStopping(monitor="val_accuracy",
    patience=patience)`` would: the best epoch is then the one a full run keeps too, unless a
    later epoch would have beaten it.
    """

    def __init__(self, on_epoch: Callable[[dict], None] | None = None, patience: int = 0):
        super().__init__()
        self.val_loss_scale = 1.0  # see _Batches: validation read in batches with weight-0 rows
        self.rows: list[dict] = []
        self.on_epoch = on_epoch
        self.patience = patience
        self.best_weights: list | None = None
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = {
            "epoch": epoch + 1,
            "train/accuracy": float(logs["accuracy"]),
            "train/loss": float(logs["loss"]),
            "val/accuracy": float(logs["val_accuracy"]),
            "val/loss": float(logs["val_loss"]) * self.val_loss_scale,
            "epoch/seconds": round(time.perf_counter() - self._started, 3),
        }
        trim_heap()  # what the epoch freed goes back to the system, not into the next epoch's peak
        if all(row["val/accuracy"] > r["val/accuracy"] for r in self.rows):
            self.best_weights = self.model.get_weights()
        self.rows.append(row)
        best = max(range(len(self.rows)), key=lambda i: (self.rows[i]["val/accuracy"], -i))
        if self.patience and len(self.rows) - 1 - best >= self.patience:
            self.model.stop_training = True
        if mlflow.active_run() is not None:
            mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
        if self.on_epoch is not None:
            self.on_epoch(row)


class BucketedBatches:
    """Batches of reviews of similar length, each padded only to its longest member.

    The full ``(n, maxlen)`` array is built once with the run's padding and
    truncating modes; a batch is a column slice of it (:func:`buckets.columns`), so every review keeps
    exactly the tokens it has in the unbucketed run, with fewer padding steps.
    Each pass (epoch) shuffles the reviews, sorts them by length within pools of
    ``BUCKET_POOL`` batches, cuts batches and shuffles the batches. Without
    ``shuffle`` (validation) each review is read at its own width, as evaluate and the served model
    read it (:func:`buckets.by_width`).
    """

    def __init__(self, sequences: Sequences, maxlen: int, batch_size: int, padding: str, truncating: str,
                 shuffle: bool, seed: int):
        self.x = pad(sequences, maxlen, padding, truncating)
        self.y = sequences.labels.astype(np.int32)
        self.lengths = np.minimum(sequences.lengths, maxlen)
        self.maxlen, self.batch_size, self.padding, self.shuffle = maxlen, batch_size, padding, shuffle
        self.rng = np.random.default_rng(seed)

    def plan(self) -> list[np.ndarray]:
        """Row indices of each batch, for one pass."""
        if not self.shuffle:
            return buckets.by_width(self.lengths, self.maxlen, self.batch_size)
        order = self.rng.permutation(len(self.y))
        pool = self.batch_size * BUCKET_POOL
        batches = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        return [batches[i] for i in self.rng.permutation(len(batches))]

    def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        width = int(buckets.width(int(self.lengths[rows].max()), self.maxlen))
        return self.x[rows, buckets.columns(width, self.maxlen, self.padding)], self.y[rows]

    def __iter__(self):
        for rows in self.plan():
            yield self.batch(rows)

    def dataset(self):
        """With TensorFlow, a tf.data pipeline with a variable time axis: one traced graph serves every
        width. With JAX, a Keras PyDataset: one compiled step per width (at most buckets.BUCKETS)."""
        if keras.backend.backend() != "tensorflow":
            return _Batches(self)
        import tensorflow as tf

        signature = (tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None,), tf.int32))
        return tf.data.Dataset.from_generator(self.__iter__, output_signature=signature).prefetch(2)


class _Batches(keras.utils.PyDataset):
    """One pass of ``BucketedBatches`` per epoch, planned anew at each epoch's end.

    Validation batches are filled up to ``batch_size`` with rows of weight 0, as evaluate fills its batches:
    one compiled validation step per width, not one per width and batch size (a width's last batch is
    smaller; measured in docs/measurements.md). Accuracy is compiled as a weighted metric, so the filler
    counts for nothing; Keras divides each batch's loss by its full size, which :attr:`loss_scale` undoes."""

    def __init__(self, source: BucketedBatches):
        super().__init__()
        self.source, self.rows = source, source.plan()
        self.filled = not source.shuffle
        self.loss_scale = len(self.rows) * source.batch_size / len(source.y) if self.filled else 1.0

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        x, y = self.source.batch(self.rows[index])
        if not self.filled:
            return x, y
        size = self.source.batch_size
        weights = np.zeros(size, dtype=np.float32)
        weights[: len(y)] = 1.0
        full_x, full_y = np.zeros((size, x.shape[1]), dtype=x.dtype), np.zeros(size, dtype=y.dtype)
        full_x[: len(y)], full_y[: len(y)] = x, y
        return full_x, full_y, weights

    def on_epoch_end(self) -> None:
        self.rows = self.source.plan()


def fit(
    model: keras.Model,
    train: Sequences,
    val: Sequences,
    *,
    maxlen: int,
    epochs: int,
    batch_size: int,
    padding: str,
    truncating: str,
    bucketing: bool,
    seed: int,
    keep: str = "last",
    patience: int = 0,
    on_epoch: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train ``model`` on ``train``, validating on ``val`` after every epoch; return the history rows.

    ``keep="best"`` leaves the model with the weights of its best validation epoch (see
    :func:`kept_row`), ``"last"`` with those of the last epoch. Only the validation split decides.
    ``patience`` > 0 (with ``keep="best"`` only) stops after that many epochs without a better one.
    """
    if keep not in KEEP:
        raise ValueError(f"keep must be one of {KEEP}, got {keep!r}")
    logger = EpochLogger(on_epoch, patience if keep == "best" else 0)
    verbose = 1 if sys.stdout.isatty() else 2  # a live bar in a terminal, one line per epoch in logs
    if bucketing:
        training = BucketedBatches(train, maxlen, batch_size, padding, truncating, shuffle=True, seed=seed)
        validation = BucketedBatches(val, maxlen, batch_size, padding, truncating, shuffle=False, seed=seed)
        validation_data = validation.dataset()
        logger.val_loss_scale = getattr(validation_data, "loss_scale", 1.0)  # tf.data batches are not filled
        # shuffle=False: BucketedBatches shuffles reviews and batches itself, every epoch.
        model.fit(training.dataset(), validation_data=validation_data, epochs=epochs, callbacks=[logger],
                  shuffle=False, verbose=verbose)
    else:
        x_train, x_val = (pad(s, maxlen, padding, truncating) for s in (train, val))
        model.fit(
            x_train, train.labels.astype(np.int32), validation_data=(x_val, val.labels.astype(np.int32)),
            epochs=epochs, batch_size=batch_size, shuffle=True, callbacks=[logger], verbose=verbose,
        )
    if keep == "best" and logger.best_weights is not None:
        model.set_weights(logger.best_weights)
    return logger.rows


def build_model(params: Params, architecture: str, settings: dict) -> keras.Model:
    """The compiled model of ``architecture`` with ``settings`` (maxlen, units, embedding_dim, dropout,
    learning_rate, and the optional bidirectional, pooling, masking, num_words: an experiment's, or a trial's); a model
    taking any length when training is bucketed."""
    from pipeline.config import OPTIONAL_SETTINGS, vocabulary_size
    from pipeline.models import build

    optional = {k: settings.get(k, default) for k, default in OPTIONAL_SETTINGS.items()
                if uses(architecture, k) and k != "num_words"}
    return build(architecture, optimizer=params.train.optimizer, learning_rate=settings["learning_rate"],
                 num_words=vocabulary_size(params, settings), embedding_dim=settings["embedding_dim"],
                 maxlen=None if bucketed(params.train.bucketing, architecture) else settings["maxlen"],
                 units=settings["units"], dropout=settings["dropout"], **optional)


def fit_model(params: Params, architecture: str, model: keras.Model, settings: dict, train: Sequences,
              val: Sequences, seed: int, on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
    """:func:`fit` with the shared train.* settings and the run's own maxlen, epochs, vocabulary cap (and batch
    size, if a trial searched it)."""
    from pipeline.config import vocabulary_size

    shared = params.train
    num_words = vocabulary_size(params, settings)
    train, val = train.capped(num_words), val.capped(num_words)
    return fit(model, train, val, maxlen=settings["maxlen"], epochs=settings["epochs"],
               batch_size=settings.get("batch_size", shared.batch_size),
               padding=shared.padding, truncating=shared.truncating,
               bucketing=bucketed(shared.bucketing, architecture), seed=seed, keep=shared.keep,
               patience=shared.patience, on_epoch=on_epoch)


def kept_row(rows: list[dict], keep: str) -> dict:
    """The history row of the epoch whose weights are kept: the first with the highest val/accuracy, or the last."""
    return max(rows, key=lambda r: r["val/accuracy"]) if keep == "best" else rows[-1]


# XLA's switch for deterministic GPU kernels. Without it two runs of one seed differ on a GPU (cuDNN's LSTM
# and Keras' scan alike, measured on an H200: bench/gpu.py); on a CPU it changes nothing.
XLA_DETERMINISM = "--xla_gpu_deterministic_ops=true"


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and the Keras backend; optionally make the backend's ops deterministic.

    TensorFlow has a switch for it. JAX's CPU kernels are deterministic already; on a GPU, XLA reads
    ``XLA_FLAGS`` once, when JAX first runs an operation, so the flag is set here, before any model exists.
    """
    if deterministic and keras.backend.backend() == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        if XLA_DETERMINISM not in flags.split():
            os.environ["XLA_FLAGS"] = f"{flags} {XLA_DETERMINISM}".strip()
    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def summarize(rows: list[dict], parameters: int, keep: str) -> dict:
    """The metrics file of one training run, in the project's metric names.

    ``val/accuracy`` and the other unprefixed values are those of the kept epoch (the saved model);
    ``best/`` and ``last/`` name the best validation epoch and the last epoch whatever was kept.
    """
    best, last, kept = kept_row(rows, "best"), rows[-1], kept_row(rows, keep)
    seconds = [r["epoch/seconds"] for r in rows]
    return {
        "keep": keep,
        "kept/epoch": kept["epoch"],
        "train/accuracy": kept["train/accuracy"],
        "train/loss": kept["train/loss"],
        "val/accuracy": kept["val/accuracy"],
        "val/loss": kept["val/loss"],
        "best/val/accuracy": best["val/accuracy"],
        "best/val/loss": min(r["val/loss"] for r in rows),
        "best/epoch": best["epoch"],
        "last/val/accuracy": last["val/accuracy"],
        "last/val/loss": last["val/loss"],
        "last/train/accuracy": last["train/accuracy"],
        "epochs": len(rows),
        # The first epoch includes graph tracing; the median is the steady-state cost.
        "epoch/seconds": round(float(np.median(seconds)), 3),
        "total/seconds": round(sum(seconds), 3),
        "parameters": parameters,
    }
