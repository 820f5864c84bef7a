"""Tokenising, vocabulary ranking, encoding, padding and the stratified split."""

import numpy as np
import pytest

from pipeline.data import (
    OOV,
    START,
    Sequences,
    build_vocabulary,
    encode,
    pad,
    stratified_split,
    tokenize,
    word_index,
)
from pipeline.stage import UserError


def test_tokenize_lowercases_drops_line_breaks_keeps_inner_apostrophes():
    text = "I didn't LIKE it.<br /><br />The director's cut -- 10/10! 'Quoted' Café_bar"
    assert tokenize(text) == [
        "i", "didn't", "like", "it", "the", "director's", "cut", "10", "10", "quoted", "café", "bar",
    ]
    assert "br" not in tokenize("one<br />two<BR/>three<br>four")


def test_vocabulary_ranks_by_count_then_alphabetically():
    documents = [["b", "a", "c", "c"], ["a", "d", "b", "c"]]
    assert build_vocabulary(documents) == [("c", 3), ("a", 2), ("b", 2), ("d", 1)]


def test_encoding_follows_keras_imdb_conventions():
    vocabulary = [("the", 9), ("movie", 5), ("good", 2)]
    index = word_index(vocabulary, num_words=5)  # room for indices 3 and 4 only
    assert index == {"the": 3, "movie": 4}
    assert encode(["the", "good", "movie", "unseen"], index) == [START, 3, OOV, 4, OOV]
    assert encode([], index) == [START]


def test_capping_at_load_time_equals_encoding_with_that_cap():
    """num_words applied to a store that keeps every word gives what prepare would have written with that cap,
    and what the served model's word_index maps the words to."""
    vocabulary = [("the", 9), ("movie", 5), ("good", 2), ("bad", 1)]
    reviews = [["the", "good", "movie", "unseen"], ["bad", "bad", "the"], []]
    full = word_index(vocabulary, len(vocabulary) + 3)
    store = Sequences.from_lists([encode(r, full) for r in reviews], [1, 0, 1], [8, 2, 9])
    for num_words in (4, 5, 6, 7, 100):
        expected = Sequences.from_lists([encode(r, word_index(vocabulary, num_words)) for r in reviews],
                                        [1, 0, 1], [8, 2, 9])
        capped = store.capped(num_words)
        np.testing.assert_array_equal(capped.tokens, expected.tokens)
        np.testing.assert_array_equal(capped.offsets, store.offsets)
        assert capped.tokens.dtype == np.int32
    np.testing.assert_array_equal(store.tokens, [START, 3, 5, 4, OOV, START, 6, 6, 3, START])  # unchanged
    with pytest.raises(ValueError, match="num_words must be >= 4"):
        store.capped(3)


@pytest.fixture
def ragged():
    rng = np.random.default_rng(0)
    lists = [list(rng.integers(1, 50, size=n)) for n in (0, 1, 5, 17, 30, 3)]
    return lists, Sequences.from_lists(lists, [0, 1, 0, 1, 0, 1], [1, 8, 2, 9, 3, 10])


@pytest.mark.parametrize("maxlen", [1, 5, 17, 40])
@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_pad_equals_keras_pad_sequences(ragged, maxlen, padding, truncating):
    import keras

    lists, sequences = ragged
    expected = keras.utils.pad_sequences(lists, maxlen=maxlen, padding=padding, truncating=truncating)
    actual = pad(sequences, maxlen, padding, truncating)
    assert actual.dtype == np.int32
    np.testing.assert_array_equal(actual, expected)


def test_pad_rejects_unknown_modes(ragged):
    with pytest.raises(ValueError, match="padding must be one of"):
        pad(ragged[1], 5, padding="middle")


def test_stratified_split_keeps_class_balance_and_never_overlaps():
    labels = np.array([0] * 600 + [1] * 400)
    train, val = stratified_split(labels, 0.2, seed=7)
    assert len(val) == 200 and len(train) == 800
    assert (labels[val] == 1).sum() == 80  # 20% of each class
    assert not set(train) & set(val)
    assert sorted(np.concatenate([train, val])) == list(range(1000))
    again_train, again_val = stratified_split(labels, 0.2, seed=7)
    np.testing.assert_array_equal(val, again_val)
    assert not np.array_equal(np.sort(val), np.sort(stratified_split(labels, 0.2, seed=8)[1]))


def test_stratified_split_refuses_an_empty_side():
    with pytest.raises(UserError, match="need at least one in each split"):
        stratified_split(np.array([0, 0, 1, 1]), 0.1, seed=0)
