"""prepare stage: the raw archive to padded-on-demand integer sequences.

Reads   data/raw/aclImdb_v1.tar.gz (in place), params base.seed, prepare.val_fraction, prepare.limit
Writes  data/prepared/{train,val,test}/{tokens,offsets,labels,ratings}.npy and names.txt,
        data/prepared/vocab.tsv (word, training count; line i is index i + 3),
        data/prepared/stats.json
Run     python -m pipeline.prepare   (or: dvc repro prepare)

The validation split is a seeded, class-stratified slice of the archive's
training split; the vocabulary is counted on what remains for training, so
validation reviews are as unseen as test reviews. Every training word keeps its
index: the vocabulary cap (``num_words``) is applied by each run when it loads the
data, so changing it never reruns this stage. Outputs are byte-identical across
reruns on the same archive and params.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline import config
from pipeline.archive import Review, read_reviews
from pipeline.data import (
    FIRST_WORD,
    OOV,
    Sequences,
    build_vocabulary,
    encode,
    save_split,
    stratified_split,
    tokenize,
    word_index,
)
from pipeline.paths import PREPARED_DIR, RAW_ARCHIVE, SPLITS, STATS, VOCABULARY, split_dir
from pipeline.stage import run, signals_deferred

TRUNCATION_REPORTED_AT = (100, 200, 300, 500)
PERCENTILES = (50, 90, 95, 99)


def split_reviews(reviews: list[Review], val_fraction: float, seed: int) -> dict[str, list[Review]]:
    train = [r for r in reviews if r.split == "train"]
    train_idx, val_idx = stratified_split(np.array([r.label for r in train]), val_fraction, seed)
    return {
        "train": [train[i] for i in train_idx],
        "val": [train[i] for i in val_idx],
        "test": [r for r in reviews if r.split == "test"],
    }


def length_stats(lengths: np.ndarray) -> dict:
    """Sequence lengths in tokens, counting the start marker (what a model is fed)."""
    stats = {f"p{p}": round(float(np.percentile(lengths, p)), 2) for p in PERCENTILES}
    stats |= {"mean": round(float(lengths.mean()), 2), "max": int(lengths.max())}
    return stats


def split_stats(sequences: Sequences) -> dict:
    lengths = sequences.lengths
    n_words = int(lengths.sum() - len(sequences))  # tokens minus one start marker per review
    return {
        "reviews": len(sequences),
        "pos": int((sequences.labels == 1).sum()),
        "neg": int((sequences.labels == 0).sum()),
        "length": length_stats(lengths),
        "truncated_fraction": {str(m): round(float((lengths > m).mean()), 4) for m in TRUNCATION_REPORTED_AT},
        "oov_rate": round(float((sequences.tokens == OOV).sum() / max(n_words, 1)), 5),
    }


def main() -> None:
    import argparse

    argparse.ArgumentParser(description="Read the raw archive, hold out a stratified validation split, tokenise and "
                                        "write data/prepared/ (params.yaml base.seed, prepare.*).").parse_args()
    params = config.load()
    reviews = read_reviews(RAW_ARCHIVE, limit=params.prepare.limit)
    splits = split_reviews(reviews, params.prepare.val_fraction, params.base.seed)

    tokens = {
        name: [tokenize(r.text) for r in tqdm(rows, desc=f"tokenising {name}", unit=" reviews", mininterval=1.0)]
        for name, rows in splits.items()
    }
    vocabulary = build_vocabulary(tokens["train"])
    index = word_index(vocabulary, len(vocabulary) + FIRST_WORD)  # every training word; runs cap at load time

    # Write everything into a sibling folder first, then swap it in: a failed
    # or interrupted run never leaves a half-written data/prepared/.
    staging = PREPARED_DIR.with_name(PREPARED_DIR.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    stats: dict = {
        "vocabulary_words": len(vocabulary),
        "val_fraction": params.prepare.val_fraction,
        "seed": params.base.seed,
        "limit": params.prepare.limit,
        "splits": {},
    }
    try:
        _write_staging(staging, splits, tokens, index, vocabulary, stats)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # a full disk or Ctrl-C: nothing half-written stays
        raise
    _swap_in(staging, PREPARED_DIR)
    counts = ", ".join(f"{n} {stats['splits'][n]['reviews']:,}" for n in SPLITS)
    print(f"prepared {counts} reviews; {len(vocabulary):,} training words, each kept with its index (a run caps "
          "the vocabulary when it loads them: its num_words, else prepare.num_words)")


def _write_staging(staging: Path, splits: dict, tokens: dict, index: dict, vocabulary: list, stats: dict) -> None:
    for name in SPLITS:
        rows = splits[name]
        sequences = Sequences.from_lists(
            [encode(t, index) for t in tokens[name]], [r.label for r in rows], [r.rating for r in rows]
        )
        save_split(sequences, [r.name for r in rows], split_dir(name, staging))
        stats["splits"][name] = split_stats(sequences)
    (staging / VOCABULARY.name).write_text("".join(f"{w}\t{c}\n" for w, c in vocabulary), encoding="utf-8")
    (staging / STATS.name).write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _swap_in(staging: Path, target: Path) -> None:
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    with signals_deferred():  # an interrupt cannot land between the two renames
        if target.exists():
            target.rename(old)
        staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


if __name__ == "__main__":
    run(main, end_process=True)
