"""Each architecture builds, trains an epoch through the shared fit(), and reloads exactly."""

import os

import keras
import numpy as np
import pytest

from pipeline.data import Sequences, pad
from pipeline.models import ARCHITECTURES, build
from pipeline.models import load as load_model
from pipeline.training import BucketedBatches, EpochLogger, fit, seed_everything, summarize


def tiny_split(n: int, seed: int) -> Sequences:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    # Positive reviews use the upper half of the vocabulary: learnable in a few steps.
    lists = [[1, *rng.integers(50 if y else 3, 100 if y else 50, rng.integers(3, 40))] for y in labels]
    return Sequences.from_lists(lists, labels, np.where(labels == 1, 8, 2))


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
@pytest.mark.parametrize("bucketing", [False, True])
def test_builds_trains_one_epoch_and_reloads_exactly(tmp_path, architecture, bucketing):
    seed_everything(1, deterministic=False)
    use_buckets = bucketing and architecture != "dense"
    model = build(architecture, optimizer="rmsprop", learning_rate=1e-3, num_words=100,
                  maxlen=None if use_buckets else 30, embedding_dim=8, units=4, dropout=0.1)
    assert isinstance(model.layers[0], keras.layers.Embedding)
    assert model.layers[-1].activation.__name__ == "sigmoid"
    train, val = tiny_split(64, 0), tiny_split(16, 1)
    rows = fit(model, train, val, maxlen=30, epochs=1, batch_size=16, padding="pre", truncating="pre",
               bucketing=use_buckets, seed=1)
    assert [r["epoch"] for r in rows] == [1] and 0 <= rows[0]["val/accuracy"] <= 1
    path = tmp_path / f"{architecture}.keras"
    model.save(path)
    x = pad(val, 30)
    np.testing.assert_array_equal(keras.models.load_model(path).predict(x, verbose=0), model.predict(x, verbose=0))


def test_epoch_logger_hands_rows_to_the_hook_and_summary_picks_the_best_epoch():
    seen = []
    model = build("dense", optimizer="adam", learning_rate=1e-2, num_words=100, maxlen=30, embedding_dim=4)
    rows = fit(model, tiny_split(64, 0), tiny_split(16, 1), maxlen=30, epochs=3, batch_size=16, padding="post",
               truncating="post", bucketing=False, seed=0, on_epoch=seen.append)
    assert seen == rows and len(rows) == 3
    assert set(rows[0]) == {"epoch", "train/accuracy", "train/loss", "val/accuracy", "val/loss", "epoch/seconds"}
    summary = summarize(rows, model.count_params(), "last")
    assert summary["best/val/accuracy"] == max(r["val/accuracy"] for r in rows)
    assert rows[summary["best/epoch"] - 1]["val/accuracy"] == summary["best/val/accuracy"]
    assert summary["val/accuracy"] == summary["last/val/accuracy"] == rows[-1]["val/accuracy"]
    assert summary["kept/epoch"] == 3
    assert summary["parameters"] == 100 * 4 + 30 * 4 + 1
    assert isinstance(EpochLogger(), keras.callbacks.Callback)


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_bucketed_batches_cover_every_review_once_with_its_padded_tokens(padding):
    sequences = tiny_split(100, 3)
    full = pad(sequences, 25, padding, "pre")
    batches = BucketedBatches(sequences, 25, 8, padding, "pre", shuffle=True, seed=0)
    plans = []
    for _ in range(2):  # two passes: a new plan each time
        seen = []
        plans.append(batches.plan())
        for rows in plans[-1]:
            x, y = batches.batch(rows)
            assert x.shape[1] % 8 == 0 or x.shape[1] == 25
            assert x.shape[1] >= min(25, sequences.lengths[rows].max())
            expected = full[rows, 25 - x.shape[1]:] if padding == "pre" else full[rows, : x.shape[1]]
            np.testing.assert_array_equal(x, expected)
            # Nothing but padding was cut off.
            assert (np.count_nonzero(x, axis=1) == np.count_nonzero(full[rows], axis=1)).all()
            np.testing.assert_array_equal(y, sequences.labels[rows])
            seen += list(rows)
        assert sorted(seen) == list(range(100))
    assert not all(np.array_equal(a, b) for a, b in zip(*plans, strict=True))
    widths = [x.shape[1] for x, _ in batches]
    assert min(widths) < 25  # short batches really are shorter


@pytest.mark.parametrize("keep", ["best", "last"])
def test_keep_leaves_the_model_with_the_weights_of_the_kept_epoch(keep):
    """best: the first epoch with the highest validation accuracy, as ModelCheckpoint(save_best_only=True)."""
    seed_everything(3, deterministic=False)
    val = tiny_split(48, 1)
    model = build("simplernn", optimizer="adam", learning_rate=0.05, num_words=100, maxlen=30, embedding_dim=4,
                  units=4)
    # A large learning rate makes validation accuracy swing, so the best epoch is rarely the last.
    rows = fit(model, tiny_split(64, 0), val, maxlen=30, epochs=6, batch_size=16, padding="pre", truncating="pre",
               bucketing=False, seed=3, keep=keep)
    summary = summarize(rows, model.count_params(), keep)
    expected = summary["best/val/accuracy"] if keep == "best" else rows[-1]["val/accuracy"]
    assert summary["val/accuracy"] == expected
    assert summary["kept/epoch"] == (summary["best/epoch"] if keep == "best" else 6)
    _, accuracy = model.evaluate(pad(val, 30), val.labels.astype(np.int32), verbose=0)
    assert accuracy == pytest.approx(expected, abs=1e-6)


def test_patience_stops_after_that_many_epochs_without_a_better_one_and_changes_nothing_before():
    """train.patience is early stopping on validation accuracy: the epochs a stopped run trains are the full run's
    first epochs, exactly; keep: last never stops."""
    def train(patience: int, keep: str = "best") -> list[dict]:
        seed_everything(3, deterministic=True)
        model = build("simplernn", optimizer="adam", learning_rate=0.05, num_words=100, maxlen=30, embedding_dim=4,
                      units=4)
        return fit(model, tiny_split(64, 0), tiny_split(48, 1), maxlen=30, epochs=12, batch_size=16, padding="pre",
                   truncating="pre", bucketing=False, seed=3, keep=keep, patience=patience)

    full = [row["val/accuracy"] for row in train(0)]
    assert len(full) == 12
    running_best = [max(range(epoch + 1), key=lambda i: (full[i], -i)) for epoch in range(12)]
    stop = next(epoch for epoch in range(12) if epoch - running_best[epoch] >= 2)  # the swings give one
    stopped = train(2)
    assert len(stopped) == stop + 1
    assert [row["val/accuracy"] for row in stopped] == full[: stop + 1]
    assert len(train(2, keep="last")) == 12


def test_keep_must_be_best_or_last():
    with pytest.raises(ValueError, match="keep must be one of"):
        fit(build("dense", optimizer="adam", learning_rate=1e-2, num_words=100, maxlen=30, embedding_dim=4),
            tiny_split(8, 0), tiny_split(8, 1), maxlen=30, epochs=1, batch_size=4, padding="pre", truncating="pre",
            bucketing=False, seed=0, keep="median")


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="XLA's GPU determinism flag is for the JAX backend")
def test_determinism_on_jax_turns_on_xlas_deterministic_gpu_ops_keeping_other_flags(monkeypatch):
    from pipeline.training import XLA_DETERMINISM

    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    seed_everything(1, deterministic=False)
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false"
    seed_everything(1, deterministic=True)
    seed_everything(1, deterministic=True)  # once only
    assert os.environ["XLA_FLAGS"] == f"--xla_cpu_enable_fast_math=false {XLA_DETERMINISM}"


def test_a_bucketed_model_reads_each_review_at_its_own_width_in_validation_and_evaluate():
    from pipeline import buckets, evaluate

    seed_everything(2, deterministic=False)
    model = build("lstm", optimizer="rmsprop", learning_rate=1e-2, num_words=100, maxlen=None, embedding_dim=8,
                  units=4)
    train, val = tiny_split(64, 0), tiny_split(40, 1)
    rows = fit(model, train, val, maxlen=30, epochs=2, batch_size=16, padding="pre", truncating="pre",
               bucketing=True, seed=1, keep="last")
    x = pad(val, 30)
    read = buckets.predict(lambda b: model.predict_on_batch(b), x, val.lengths, "pre", 16)
    # The validation accuracy and loss Keras computed in training are evaluate's reading of the same reviews
    # (its batches filled up to batch_size with rows of weight 0, which count for nothing).
    assert np.mean((read > 0.5) == val.labels) == pytest.approx(rows[-1]["val/accuracy"], abs=1e-6)
    p = np.clip(read, 1e-7, 1 - 1e-7)
    cross_entropy = -np.mean(val.labels * np.log(p) + (1 - val.labels) * np.log(1 - p))
    assert rows[-1]["val/loss"] == pytest.approx(cross_entropy, rel=1e-5)
    probabilities, _ = evaluate.predict(model, x, val.lengths, "pre", 16)
    np.testing.assert_allclose(probabilities, read, rtol=1e-5)
    # A review's probability is its own: the same alone as among the others.
    for i in (0, 7, 31):
        alone = buckets.predict(lambda b: model.predict_on_batch(b), x[i:i + 1], val.lengths[i:i + 1], "pre", 16)
        assert alone[0] == pytest.approx(read[i], rel=1e-5)
    # Batches of one width each, narrowest first, every review once.
    batches = buckets.by_width(val.lengths, 30, 16)
    widths = [set(buckets.width(np.minimum(val.lengths[b], 30), 30).tolist()) for b in batches]
    assert all(len(w) == 1 for w in widths) and [min(w) for w in widths] == sorted(min(w) for w in widths)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(val)))


def test_bucketed_validation_batches_are_full_so_each_width_compiles_one_step():
    """With JAX a validation step is compiled per batch shape: a width's last, smaller batch would be a second
    one. Every batch holds batch_size rows, the filler weighted 0, and every review is read once."""
    from pipeline import buckets
    from pipeline.training import _Batches

    val = tiny_split(40, 1)
    batches = _Batches(BucketedBatches(val, 30, 8, "pre", "pre", shuffle=False, seed=1))
    read = [batches[i] for i in range(len(batches))]
    widths = np.unique(buckets.width(np.minimum(val.lengths, 30), 30))
    assert len({len(rows) for rows in batches.rows}) > 1  # unfilled, the batches would have several sizes
    assert {x.shape for x, _, _ in read} == {(8, int(w)) for w in widths}
    assert sum(weights.sum() for _, _, weights in read) == len(val)
    assert all(not x[weights == 0].any() for x, _, weights in read)  # filler rows hold no review
    assert batches.loss_scale == len(read) * 8 / len(val)


def test_evaluate_warms_up_on_one_review_per_width_then_reads_every_review_once():
    from pipeline import buckets, evaluate

    seed_everything(3, deterministic=False)
    model = build("gru", optimizer="rmsprop", learning_rate=1e-2, num_words=100, maxlen=None, embedding_dim=8,
                  units=4)
    val = tiny_split(40, 1)
    x = pad(val, 30)

    class Counting:  # the model as evaluate sees it, counting the real reviews in each batch it reads
        input_shape = model.input_shape
        rows: list[int] = []

        def predict_on_batch(self, batch):
            self.rows.append(int(np.count_nonzero(batch.any(axis=1))))
            return model.predict_on_batch(batch)

    counting = Counting()
    probabilities, _ = evaluate.predict(counting, x, val.lengths, "pre", 16)
    widths = np.unique(buckets.width(np.minimum(val.lengths, 30), 30))
    reads = buckets.by_width(val.lengths, 30, 16)
    # Warm-up: one batch per width, holding one review; then the timed pass: every review once.
    assert counting.rows == [1] * len(widths) + [len(rows) for rows in reads]
    np.testing.assert_allclose(probabilities, buckets.predict(model.predict_on_batch, x, val.lengths, "pre", 16),
                               rtol=1e-6)


def test_the_search_options_build_the_layers_they_name_and_the_defaults_build_the_tutorials_model():
    def kinds(**options):
        keras.backend.clear_session()
        model = build("gru", optimizer="rmsprop", learning_rate=1e-3, num_words=50, maxlen=None, embedding_dim=4,
                      units=3, **options)
        return [type(layer).__name__ for layer in model.layers], model

    assert kinds()[0] == ["Embedding", "GRU", "Dense"]
    assert kinds(bidirectional=True, pooling="max")[0] == ["Embedding", "Bidirectional", "GlobalMaxPooling1D",
                                                           "Dense"]
    assert kinds(pooling="mean", masking=True)[0] == ["Embedding", "GRU", "GlobalAveragePooling1D", "Dense"]
    # Masking with the last state or mean pooling: padding no longer changes a review's probability.
    review = np.array([[5, 6, 7, 8]])
    padded = np.array([[0, 0, 0, 0, 0, 0, 5, 6, 7, 8]])
    for options in ({"masking": True}, {"masking": True, "pooling": "mean", "bidirectional": True}):
        _, model = kinds(**options)
        assert float(model.predict_on_batch(review)[0, 0]) == pytest.approx(
            float(model.predict_on_batch(padded)[0, 0]), abs=1e-6)
    _, model = kinds()  # without masking it does (the reason bucketed models read each review at its own width)
    assert abs(float(model.predict_on_batch(review)[0, 0]) - float(model.predict_on_batch(padded)[0, 0])) > 1e-7


def test_gru_runs_the_generic_scan_on_a_cpu_built_or_loaded_and_computes_what_the_fused_path_computes(tmp_path):
    """Keras' fused GRU path is slower on a CPU (docs/measurements.md); the generic scan must give the same model."""
    keras.backend.clear_session()
    model = build("gru", optimizer="rmsprop", learning_rate=1e-3, num_words=50, maxlen=None, embedding_dim=4,
                  units=3, bidirectional=True, pooling="max")
    wrapper = model.layers[1]
    assert [wrapper.forward_layer.use_cudnn, wrapper.backward_layer.use_cudnn] == [False, False]
    path = tmp_path / "gru.keras"
    model.save(path)
    loaded = load_model(path)
    reviews = np.random.default_rng(0).integers(1, 50, size=(8, 20))
    generic = loaded.predict_on_batch(reviews)
    assert [loaded.layers[1].forward_layer.use_cudnn, loaded.layers[1].backward_layer.use_cudnn] == [False, False]
    fused = keras.models.load_model(path)  # Keras' default, "auto": the fused path on a CPU
    assert fused.layers[1].forward_layer.use_cudnn == "auto"
    np.testing.assert_allclose(fused.predict_on_batch(reviews), generic, rtol=1e-5, atol=1e-6)


TRAIN_ONCE = """
import hashlib, sys
import pipeline, jax, keras, numpy as np
from tests.test_models import tiny_split
from pipeline.models import build
from pipeline.training import fit, seed_everything
seed_everything(4, deterministic=True)
model = build("gru", optimizer="rmsprop", learning_rate=1e-2, num_words=100, maxlen=None, embedding_dim=8, units=4)
fit(model, tiny_split(64, 0), tiny_split(32, 1), maxlen=30, epochs=1, batch_size=16, padding="pre",
    truncating="pre", bucketing=True, seed=4)
print(jax.config.jax_compilation_cache_dir)
print(hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.get_weights())).hexdigest())
"""


def test_compiled_steps_are_cached_across_processes_and_give_the_same_model(tmp_path):
    """JAX's persistent compilation cache (set up by pipeline/__init__.py): a second process reuses the
    first one's compiled steps and trains the same weights, bit for bit."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")} | {"KERAS_BACKEND": "jax",
                                                                                "XDG_CACHE_HOME": str(tmp_path)}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def train_once() -> list[str]:
        result = subprocess.run([sys.executable, "-c", TRAIN_ONCE], cwd=root, env=env, capture_output=True,
                                text=True, check=True)
        return result.stdout.split()[-2:]

    where, first = train_once()
    cache = tmp_path / "imdb-rnn-lab" / "jax"
    assert where == str(cache)  # the default: under the user's cache directory
    assert list(cache.glob("jit_train_step-*-cache"))  # the compiled training step was written
    written = {p.name: p.stat().st_mtime_ns for p in cache.glob("*-cache")}
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache)  # an override is honoured (here: the same place)
    assert train_once() == [str(cache), first]  # read from the cache: the same weights, bit for bit
    assert all(p.stat().st_mtime_ns == written[p.name] for p in cache.glob("*-cache") if p.name in written)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="on TensorFlow the backend is TensorFlow")
def test_saving_and_logging_a_model_on_jax_does_not_import_tensorflow(tmp_path):
    """Keras' serializer would import TensorFlow (installed for the other backend) on the first save: 0.5 GB."""
    import subprocess
    import sys

    script = f"""
import sys
import mlflow, numpy as np
from pipeline import tracking
from pipeline.models import build
model = build("lstm", optimizer="rmsprop", learning_rate=1e-3, num_words=100, maxlen=None, embedding_dim=8, units=4)
model.save({str(tmp_path / "m.keras")!r})
mlflow.set_tracking_uri({f"sqlite:///{tmp_path / 'mlflow.db'}"!r})
with mlflow.start_run():
    tracking.log_model(model, np.ones((2, 10), dtype="int32"))
print("tensorflow" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            env=os.environ | {"KERAS_BACKEND": "jax"})
    assert result.stdout.strip().splitlines()[-1] == "False"
