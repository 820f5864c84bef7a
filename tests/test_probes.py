"""Claim 5's probes on tiny models whose memory is known by construction."""

import keras
import numpy as np
import pytest

from pipeline import probes
from pipeline.data import Sequences

MAXLEN = 12
POSITIVE, NEGATIVE = 7, 8  # word indices that give a review away when the model can see them


def reviews(n: int = 40) -> Sequences:
    """Balanced reviews whose last word tells the label; the rest is neutral words."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    lists = [[1, *rng.integers(20, 30, 5), POSITIVE if y else NEGATIVE] for y in labels]
    return Sequences.from_lists(lists, labels, np.where(labels == 1, 9, 1))


def last_step_model(maxlen: int = MAXLEN) -> keras.Model:
    """Reads only the last input step: a network with no memory at all."""
    model = keras.Sequential([keras.Input((maxlen,), dtype="int32"), keras.layers.Embedding(40, 1),
                              keras.layers.Flatten(), keras.layers.Dense(1, activation="sigmoid")])
    vectors = np.zeros((40, 1), np.float32)
    vectors[POSITIVE], vectors[NEGATIVE] = 5.0, -5.0
    weights = np.zeros((maxlen, 1), np.float32)
    weights[-1] = 1.0
    model.layers[0].set_weights([vectors])
    model.layers[2].set_weights([weights, np.zeros(1, np.float32)])
    return model


def test_memory_inputs_move_the_same_content_away_from_the_end():
    sequences = reviews(2)
    x0 = probes.memory_inputs(sequences, MAXLEN, content=3, distance=0, filler=0)
    x4 = probes.memory_inputs(sequences, MAXLEN, content=3, distance=4, filler=3)
    assert x0.shape == x4.shape == (2, MAXLEN)
    content = x0[:, -3:]
    np.testing.assert_array_equal(content[:, -1], [NEGATIVE, POSITIVE])
    np.testing.assert_array_equal(x4[:, -7:-4], content)  # the same tokens, 4 steps earlier
    assert (x4[:, -4:] == 3).all() and (x4[:, :-7] == 0).all() and (x0[:, :-3] == 0).all()
    with pytest.raises(ValueError, match="exceeds maxlen"):
        probes.memory_inputs(sequences, MAXLEN, content=3, distance=10, filler=0)


def test_memory_probe_finds_a_model_that_cannot_remember():
    rows = probes.memory_accuracy(last_step_model(), reviews(), MAXLEN, content=3, distances=[0, 1, 5])
    accuracy = {(r["filler"], r["distance"]): r["accuracy"] for r in rows}
    assert set(accuracy) == {(f, d) for f in probes.FILLERS for d in (0, 1, 5)}
    for filler in probes.FILLERS:
        assert accuracy[filler, 0] == 1.0  # the giveaway word is at the last step
        assert accuracy[filler, 1] == accuracy[filler, 5] == 0.5  # one step back, it is forgotten


def test_gradient_of_a_last_step_model_reaches_nothing_earlier():
    sequences = reviews()
    x = probes.memory_inputs(sequences, MAXLEN, content=6, distance=0, filler=0)
    norms = probes.input_gradient_norms(last_step_model(), x, sequences.labels.astype(np.float32))
    assert norms.shape == (MAXLEN,) and norms[-1] > 0 and (norms[:-1] == 0).all()
    assert probes.reach(norms) == 0.0


def test_gradient_norms_in_batches_equal_the_norms_of_all_reviews_at_once():
    """The train stage differentiates the probe reviews probes.PROBE_BATCH at a time (memory); each review's
    own loss is differentiated, so any batching gives the same mean norms, an uneven last batch included."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((MAXLEN,), dtype="int32"), keras.layers.Embedding(40, 4),
                              keras.layers.LSTM(3), keras.layers.Dense(1, activation="sigmoid")])
    sequences = reviews(23)
    x = probes.memory_inputs(sequences, MAXLEN, content=6, distance=0, filler=0)
    y = sequences.labels.astype(np.float32)
    whole = probes.input_gradient_norms(model, x, y, batch=len(x))
    for batch in (1, 5, 10):
        np.testing.assert_allclose(probes.input_gradient_norms(model, x, y, batch=batch), whole, rtol=1e-5)
    assert whole.dtype == np.float32 and whole.shape == (MAXLEN,) and (whole > 0).all()


def test_probing_leaves_the_random_state_of_a_recurrent_dropout_layer_as_it_was():
    """A recurrent layer with dropout draws from its seed generator even in inference mode: the probe restores
    it, so the training after a probe is the training without one (a full run found the tuned models with
    recurrent dropout trained differently once the probe was batched)."""
    def trained(probe: bool) -> list:
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((MAXLEN,), dtype="int32"), keras.layers.Embedding(40, 4),
                                  keras.layers.LSTM(3, dropout=0.5), keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer="rmsprop", loss="binary_crossentropy")
        sequences = reviews(16)
        x = probes.memory_inputs(sequences, MAXLEN, content=6, distance=0, filler=0)
        y = sequences.labels.astype(np.float32)
        if probe:
            probes.input_gradient_norms(model, x, y, batch=4)
        model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
        return model.get_weights()

    for with_probe, without in zip(trained(True), trained(False), strict=True):
        np.testing.assert_array_equal(with_probe, without)


def test_reach_is_relative_to_a_robust_reference():
    flat = np.ones(200)
    assert probes.reach(flat) == 1.0
    spiked = flat.copy()
    spiked[-1] = 2.0  # one noisy step at the end moves the reference (mean of the last 10) by a tenth only
    assert probes.reach(spiked) == pytest.approx(1 / 1.1)
    decaying = 0.9 ** np.arange(200)[::-1]  # the earliest steps get almost nothing
    assert probes.reach(decaying) < 1e-6
    assert np.isnan(probes.reach(np.zeros(50)))  # no gradient at all: undefined, not 0 or infinity


def test_gradient_rows_prefer_reviews_that_fill_the_window():
    sequences = Sequences.from_lists([[1] * 5, [1] * 20, [1] * 3, [1] * 15], [0, 1, 0, 1], [1, 9, 1, 9])
    assert list(probes.gradient_rows(sequences, 10, 2)) == [1, 3]
    assert list(probes.gradient_rows(sequences, 10, 3)) == [1, 3, 0]  # topped up with the longest of the rest
    assert list(probes.memory_rows(sequences, 4, 10)) == [0, 1, 3]
