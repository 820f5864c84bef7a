"""The servable model: raw review text in, positive-class probability and label out.

:class:`SentimentModel` is an MLflow pyfunc that bundles the Keras model with
everything needed to turn text into its input, exactly as prepare did for
training: the tokeniser and encoder of :mod:`pipeline.data` (shipped as code),
the training vocabulary (``vocab.tsv``), ``num_words``, maxlen, padding and
truncating. ``mlflow models serve`` and :mod:`pipeline.predict` both use it.

Input: a list of strings, a pandas Series, or a DataFrame with a ``review``
column. Output: a DataFrame with ``probability`` (positive class) and ``label``
(``positive`` or ``negative``), one row per review.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import AnyType

COLUMN = "review"
# One unnamed column: a plain list of texts passes MLflow's schema check, and so does a
# DataFrame with a single column; predict() insists that column is "review" and that every
# value is text. The column is typed Any, not string: with string, `mlflow models serve`
# casts each JSON value to text before predict() sees it, so null became the review "None".
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec(AnyType())]),
    outputs=Schema([ColSpec("double", "probability"), ColSpec("string", "label")]),
)
EXAMPLE = pd.DataFrame({COLUMN: ["A moving, beautifully acted film.", "Dull, predictable and far too long."]})
PREDICT_BATCH = 256


def reviews_from(model_input) -> list[str]:
    """The review texts of any accepted input form; anything else is a clear error."""
    if isinstance(model_input, pd.DataFrame):
        if list(model_input.columns) == [0]:  # a plain list, made a frame by MLflow's schema check
            model_input = model_input.rename(columns={0: COLUMN})
        if COLUMN not in model_input.columns:
            columns = ", ".join(map(str, model_input.columns))
            raise MlflowException(f"input has no {COLUMN!r} column (columns: {columns}); send a DataFrame with a "
                                  f"{COLUMN!r} column of review texts", INVALID_PARAMETER_VALUE)
        values = model_input[COLUMN].tolist()
    elif isinstance(model_input, pd.Series | list | tuple | np.ndarray):
        values = list(model_input)
    elif isinstance(model_input, str):
        values = [model_input]
    else:
        raise MlflowException(f"input of type {type(model_input).__name__} not understood; send review texts",
                              INVALID_PARAMETER_VALUE)
    for position, value in enumerate(values):
        if not isinstance(value, str):
            # JSON null arrives as None, or as NaN once pandas has made a column of it.
            kind = "null" if value is None or (isinstance(value, float) and np.isnan(value)) else type(value).__name__
            raise MlflowException(f"review {position} is not text ({kind}); send one string per review",
                                  INVALID_PARAMETER_VALUE)
    return values


class SentimentModel(mlflow.pyfunc.PythonModel):
    """A Keras sentiment model that reads raw review text."""

    def load_context(self, context) -> None:
        import keras

        from pipeline.data import load_vocabulary, word_index

        settings = json.loads(Path(context.artifacts["settings"]).read_text(encoding="utf-8"))
        self.maxlen, self.padding, self.truncating = settings["maxlen"], settings["padding"], settings["truncating"]
        self.index = word_index(load_vocabulary(Path(context.artifacts["vocabulary"])), settings["num_words"])
        self.model = keras.models.load_model(context.artifacts["keras_model"], safe_mode=True)
        # XLA compiles the recurrent loop into one kernel: one review in about 1.5 ms instead of 21 ms
        # (LSTM over 500 steps, bench/serving.py); probabilities agree with Keras' to about 1e-7.
        self.model.jit_compile = True

    def encode(self, reviews: list[str]) -> np.ndarray:
        return self._encode(reviews)[0]

    def _encode(self, reviews: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The reviews padded to maxlen, and their lengths in tokens."""
        from pipeline.data import Sequences, encode, pad, tokenize

        sequences = Sequences.from_lists([encode(tokenize(r), self.index) for r in reviews],
                                         np.zeros(len(reviews)), np.zeros(len(reviews)))
        return pad(sequences, self.maxlen, self.padding, self.truncating), sequences.lengths

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        reviews = reviews_from(model_input)
        if not reviews:
            return pd.DataFrame({"probability": np.zeros(0), "label": np.array([], dtype=object)})
        encoded, lengths = self._encode(reviews)
        if self.model.input_shape[1] is None:  # trained on length buckets: each review at its own width
            from pipeline import buckets

            probabilities = buckets.predict(self._predict, encoded, lengths, self.padding, PREDICT_BATCH)
        else:
            probabilities = np.concatenate([self._predict(encoded[start:start + PREDICT_BATCH])
                                            for start in range(0, len(encoded), PREDICT_BATCH)]).astype(np.float64)
        return pd.DataFrame({"probability": probabilities,
                             "label": np.where(probabilities >= 0.5, "positive", "negative")})


    def _predict(self, batch: np.ndarray) -> np.ndarray:
        """predict_on_batch runs the compiled step directly (Keras' predict() builds a dataset and an iterator
        per call, about 50 ms). The batch is padded to a power of two: XLA compiles once per batch shape, so at
        most 9 shapes (1 to 256), each compiled on first use; the padding rows are dropped."""
        size = 1 << (len(batch) - 1).bit_length()
        padded = np.zeros((size, batch.shape[1]), dtype=batch.dtype)
        padded[:len(batch)] = batch
        return np.asarray(self.model.predict_on_batch(padded)).reshape(-1)[:len(batch)]


def log_servable(keras_path: Path, vocabulary: Path, settings: dict) -> str:
    """Log the pyfunc (model, vocabulary, settings, pipeline code) to the active run; return its model URI."""
    import tempfile
    from importlib import metadata

    from pipeline.tracking import model_requirements

    # Named, not inferred: inference loads the model in a subprocess, ~10 s for the same list.
    requirements = [*model_requirements(), f"pandas=={metadata.version('pandas')}",
                    f"mlflow=={metadata.version('mlflow')}"]
    with tempfile.TemporaryDirectory() as folder:
        settings_path = Path(folder) / "settings.json"
        settings_path.write_text(json.dumps(settings, indent=2, sort_keys=True), encoding="utf-8")
        info = mlflow.pyfunc.log_model(
            name="servable", python_model=str(Path(__file__).with_name("model_code.py")),
            artifacts={"keras_model": str(keras_path), "vocabulary": str(vocabulary), "settings": str(settings_path)},
            code_paths=[str(Path(__file__).parent)], signature=SIGNATURE, input_example=EXAMPLE,
            pip_requirements=requirements,
        )
    return info.model_uri
