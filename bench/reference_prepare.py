"""The plain way, as the tutorial (after Chollet, ch. 6) prepares raw IMDb text.

Extract the archive, walk the folders reading each file, tokenise with the
classic Keras ``Tokenizer`` rules (filter punctuation, lower-case, split on
spaces; re-implemented here because Keras 3 removed the class), count words
on the training texts, turn texts into sequences and pad them. This is the
reference that bench/prepare.py times our prepare stage against.

    python bench/reference_prepare.py ARCHIVE
"""

import os
import sys
import tarfile
import tempfile
from collections import Counter

import keras
import numpy as np

FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
NUM_WORDS, MAXLEN = 10000, 200


def text_to_word_sequence(text):
    text = text.lower().translate(str.maketrans({c: " " for c in FILTERS}))
    return [w for w in text.split(" ") if w]


def read_texts(base, split):
    texts, labels = [], []
    for label_type in ("neg", "pos"):
        folder = os.path.join(base, split, label_type)
        for name in sorted(os.listdir(folder)):
            if name.endswith(".txt"):
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    texts.append(handle.read())
                labels.append(0 if label_type == "neg" else 1)
    return texts, labels


def main(archive):
    with tempfile.TemporaryDirectory() as workdir:
        with tarfile.open(archive) as tar:
            tar.extractall(workdir, filter="data")
        base = os.path.join(workdir, "aclImdb")
        train_texts, train_labels = read_texts(base, "train")
        test_texts, test_labels = read_texts(base, "test")
    counts = Counter()
    for text in train_texts:
        counts.update(text_to_word_sequence(text))
    index = {w: i + 1 for i, (w, _) in enumerate(counts.most_common())}
    def to_sequences(texts):
        return [[index[w] for w in text_to_word_sequence(t) if index.get(w, NUM_WORDS) < NUM_WORDS] for t in texts]
    x_train = keras.utils.pad_sequences(to_sequences(train_texts), maxlen=MAXLEN)
    x_test = keras.utils.pad_sequences(to_sequences(test_texts), maxlen=MAXLEN)
    print(f"reference: {x_train.shape} train, {x_test.shape} test, {np.mean(train_labels + test_labels):.2f} positive")


if __name__ == "__main__":
    main(sys.argv[1])
