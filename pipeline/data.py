"""Text to integer sequences, and the prepared-data store every later stage reads.

Tokenising rule (documented in the README): lower-case the review, replace the
HTML line breaks ``<br />`` with spaces, then keep runs of letters and digits,
with apostrophes allowed inside a word (``don't``, ``director's``); everything
else separates words.

Encoding follows ``keras.datasets.imdb``: 0 is padding, 1 starts every review,
2 stands for a word out of the vocabulary, real words start at 3 ranked by
their frequency in the training split (ties broken alphabetically). The store
keeps every training word's index (only words never seen in training are 2);
the vocabulary cap ``num_words`` is applied when a run loads it
(:meth:`Sequences.capped`: an index that reaches ``num_words`` becomes 2), so
runs with different caps share one prepared store and nobody re-tokenises.

Each split is stored ragged (``tokens.npy`` holds every sequence end to end,
``offsets.npy`` where each starts), so any maxlen and padding mode is served
by :func:`load_padded` without tokenising again.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from pipeline.paths import PREPARED_DIR, STATS, VOCABULARY, split_dir
from pipeline.stage import UserError

PAD, START, OOV, FIRST_WORD = 0, 1, 2, 3
PADDING_MODES = ("pre", "post")

_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# [^\W_] is a Unicode letter or digit; an apostrophe may join two such runs.
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def tokenize(text: str) -> list[str]:
    return _WORD.findall(_LINE_BREAK.sub(" ", text.lower()))


def build_vocabulary(documents: Iterable[list[str]]) -> list[tuple[str, int]]:
    """Every word with its count, most frequent first; equal counts in alphabetical order."""
    counts: Counter = Counter()
    for tokens in documents:
        counts.update(tokens)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def word_index(vocabulary: Sequence[tuple[str, int]], num_words: int) -> dict[str, int]:
    """Word to integer for the words that fit below ``num_words`` (index 3 is the most frequent)."""
    kept = max(0, num_words - FIRST_WORD)
    return {word: FIRST_WORD + rank for rank, (word, _) in enumerate(vocabulary[:kept])}


def encode(tokens: Iterable[str], index: dict[str, int]) -> list[int]:
    return [START, *(index.get(word, OOV) for word in tokens)]


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (train, validation): the same fraction of each class goes to validation.

    Both index arrays come back in a seeded random order, so neither split is
    sorted by class.
    """
    rng = np.random.default_rng(seed)
    train_parts, val_parts = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val = int(round(len(members) * val_fraction))
        if not 0 < n_val < len(members):
            raise UserError(
                f"prepare.val_fraction = {val_fraction}: leaves {n_val} of {len(members)} reviews "
                f"of class {label} for validation; need at least one in each split"
            )
        val_parts.append(members[:n_val])
        train_parts.append(members[n_val:])
    return rng.permutation(np.concatenate(train_parts)), rng.permutation(np.concatenate(val_parts))


@dataclass(frozen=True)
class Sequences:
    """One split as stored: ragged token sequences and their labels."""

    tokens: np.ndarray  # int32, every sequence end to end
    offsets: np.ndarray  # int64, len(labels) + 1; sequence i is tokens[offsets[i]:offsets[i+1]]
    labels: np.ndarray  # int8, 1 positive, 0 negative
    ratings: np.ndarray  # int8, the 1-10 rating from the file name

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.labels)

    def capped(self, num_words: int) -> Sequences:
        """The same reviews with a vocabulary of ``num_words``: every index >= num_words becomes 2 (OOV), as
        ``keras.datasets.imdb.load_data(num_words=...)`` and :func:`word_index` with that cap encode them."""
        if num_words < FIRST_WORD + 1:
            raise ValueError(f"num_words must be >= {FIRST_WORD + 1}, got {num_words}")
        if len(self.tokens) == 0 or int(self.tokens.max()) < num_words:
            return self
        tokens = np.where(self.tokens >= num_words, np.int32(OOV), self.tokens).astype(np.int32)
        return Sequences(tokens, self.offsets, self.labels, self.ratings)

    def take(self, rows: np.ndarray) -> Sequences:
        """The reviews at ``rows``, in that order."""
        starts, lengths = self.offsets[rows], self.lengths[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        tokens = self.tokens[np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])]
        return Sequences(tokens, offsets, self.labels[rows], self.ratings[rows])

    @classmethod
    def from_lists(cls, sequences: Sequence[list[int]], labels, ratings) -> Sequences:
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        tokens = np.fromiter(chain.from_iterable(sequences), dtype=np.int32, count=int(offsets[-1]))
        return cls(tokens, offsets, np.asarray(labels, np.int8), np.asarray(ratings, np.int8))


def save_split(sequences: Sequences, names: Sequence[str], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for field in ("tokens", "offsets", "labels", "ratings"):
        np.save(directory / f"{field}.npy", getattr(sequences, field), allow_pickle=False)
    (directory / "names.txt").write_text("".join(f"{name}\n" for name in names), encoding="utf-8")


def load_split(split: str, prepared_dir: Path = PREPARED_DIR) -> Sequences:
    directory = split_dir(split, prepared_dir)
    try:
        arrays = {f: np.load(directory / f"{f}.npy", allow_pickle=False)
                  for f in ("tokens", "offsets", "labels", "ratings")}
    except FileNotFoundError as error:
        raise UserError(f"{error.filename}: prepared data missing; run `dvc repro prepare` first") from None
    except ValueError as error:  # object arrays need pickles, which could run code: never loaded
        raise UserError(f"{directory}: not plain numeric arrays ({error}); rerun `dvc repro -f prepare`") from None
    return Sequences(**arrays)


def pad(sequences: Sequences, maxlen: int, padding: str = "pre", truncating: str = "pre") -> np.ndarray:
    """Dense ``(n, maxlen)`` int32 array, equal to ``keras.utils.pad_sequences`` with value 0.

    ``truncating="pre"`` keeps the last ``maxlen`` tokens of a long sequence
    (Keras' default), ``"post"`` the first; ``padding`` puts the zeros before
    (``"pre"``) or after the tokens.
    """
    if maxlen < 1:
        raise ValueError(f"maxlen must be >= 1, got {maxlen}")
    for name, mode in (("padding", padding), ("truncating", truncating)):
        if mode not in PADDING_MODES:
            raise ValueError(f"{name} must be one of {PADDING_MODES}, got {mode!r}")
    starts, ends = sequences.offsets[:-1], sequences.offsets[1:]
    kept = np.minimum(ends - starts, maxlen)
    source_start = ends - kept if truncating == "pre" else starts
    row = np.repeat(np.arange(len(kept)), kept)
    position = np.arange(int(kept.sum())) - np.repeat(np.cumsum(kept) - kept, kept)
    column = position + (maxlen - kept)[row] if padding == "pre" else position
    padded = np.zeros((len(kept), maxlen), dtype=np.int32)
    padded[row, column] = sequences.tokens[np.repeat(source_start, kept) + position]
    return padded


def load_padded(
    split: str, maxlen: int, padding: str = "pre", truncating: str = "pre", prepared_dir: Path = PREPARED_DIR
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` for one split: x is ``(n, maxlen)`` int32, y is ``(n,)`` int32 labels."""
    sequences = load_split(split, prepared_dir)
    return pad(sequences, maxlen, padding, truncating), sequences.labels.astype(np.int32)


def load_vocabulary(path: Path = VOCABULARY) -> list[tuple[str, int]]:
    rows = path.read_text(encoding="utf-8").splitlines()
    return [(word, int(count)) for word, count in (row.split("\t") for row in rows)]


def load_stats(path: Path = STATS) -> dict:
    """prepare's statistics, after checking that the store keeps every training word (a store prepared before
    num_words became a load-time cap holds capped indices, which no larger cap could undo)."""
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: prepared data missing; run `dvc repro prepare` first") from None
    if "num_words" in stats:
        raise UserError(f"{path}: prepared with the vocabulary capped at {stats['num_words']} (an older layout); "
                        "run `dvc repro prepare` to keep every training word")
    return stats
