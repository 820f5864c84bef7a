"""The prepare stage on the small real-review archive, under real DVC, and on the full archive."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.data import load_padded, load_split, load_vocabulary, pad
from tests.conftest import SHARED_ARCHIVE, SMALL_ARCHIVE, run, set_params


def prepare(project: Path, archive: Path = SMALL_ARCHIVE) -> Path:
    raw = project / "data/raw/aclImdb_v1.tar.gz"
    raw.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(archive, raw)
    run(["python", "-m", "pipeline.prepare"], project)
    return project / "data/prepared"


def names(prepared: Path, split: str) -> list[str]:
    return (prepared / split / "names.txt").read_text().splitlines()


def test_outputs_are_complete_disjoint_and_byte_identical_on_rerun(project):
    prepared = prepare(project)
    stats = json.loads((prepared / "stats.json").read_text())
    assert {s: stats["splits"][s]["reviews"] for s in ("train", "val", "test")} == {
        "train": 64, "val": 16, "test": 80}
    assert stats["splits"]["val"]["pos"] == stats["splits"]["val"]["neg"] == 8
    assert set(stats["splits"]["test"]["truncated_fraction"]) == {"100", "200", "300", "500"}
    assert 0 < stats["splits"]["test"]["oov_rate"] < 1

    train, val, test = (set(names(prepared, s)) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert all(n.startswith("train/") for n in train | val) and all(n.startswith("test/") for n in test)

    # The vocabulary is counted on the training reviews alone.
    vocabulary = dict(load_vocabulary(prepared / "vocab.tsv"))
    assert vocabulary["the"] > 100 and list(vocabulary)[0] == "the"
    sequences = load_split("train", prepared)
    assert sequences.tokens.dtype == np.int32 and sequences.tokens.max() < 10000
    assert (sequences.tokens[sequences.offsets[:-1]] == 1).all()  # every review starts with 1

    first = project.parent / "first"
    shutil.copytree(prepared, first)
    prepare(project)
    comparison = filecmp.dircmp(first, prepared)
    assert not comparison.diff_files and not comparison.left_only and not comparison.right_only
    for split in ("train", "val", "test"):
        assert not filecmp.dircmp(first / split, prepared / split).diff_files
        assert filecmp.cmp(first / split / "tokens.npy", prepared / split / "tokens.npy", shallow=False)


def test_vocabulary_counts_exactly_the_training_reviews(project):
    """Counted independently from the archive: every training review's words, and no other review's."""
    from collections import Counter

    from pipeline.archive import read_reviews
    from pipeline.data import tokenize

    prepared = prepare(project)
    by_name = {r.name: r for r in read_reviews(SMALL_ARCHIVE, progress=False)}
    counts = {split: Counter(w for n in names(prepared, split) for w in tokenize(by_name[n].text))
              for split in ("train", "val", "test")}
    assert dict(load_vocabulary(prepared / "vocab.tsv")) == dict(counts["train"])
    # Not vacuous: validation and test reviews have words of their own, and none of them is counted.
    unseen = (set(counts["val"]) | set(counts["test"])) - set(counts["train"])
    assert len(unseen) > 50 and not unseen & set(dict(load_vocabulary(prepared / "vocab.tsv")))


def test_loader_serves_any_maxlen_and_mode(project):
    prepared = prepare(project)
    x, y = load_padded("val", 50, "post", "post", prepared)
    assert x.shape == (16, 50) and x.dtype == np.int32 and y.dtype == np.int32
    assert (x[:, 0] == 1).all()  # post-truncation keeps the start marker
    x_pre, _ = load_padded("val", 50, prepared_dir=prepared)
    np.testing.assert_array_equal(x_pre, pad(load_split("val", prepared), 50))


def test_limit_shrinks_every_split(project):
    set_params(project, **{"prepare.limit": 10, "prepare.num_words": 500})
    prepared = prepare(project)
    stats = json.loads((prepared / "stats.json").read_text())
    assert [stats["splits"][s]["reviews"] for s in ("train", "val", "test")] == [16, 4, 20]
    # Every training word keeps its index (num_words caps at load time): the store is the same for any cap.
    train = load_split("train", prepared)
    assert train.tokens.max() == stats["vocabulary_words"] + 2 and "num_words" not in stats
    assert not (train.tokens == 2).any()  # no training word is out of the vocabulary
    capped = train.capped(500)
    assert capped.tokens.max() < 500 and (capped.tokens == 2).sum() == (train.tokens >= 500).sum()


def test_dvc_repro_prepare_in_a_git_repository(project):
    result = run(["dvc", "repro", "prepare"], project, IMDB_ARCHIVE=str(SMALL_ARCHIVE))
    assert "Running stage 'download'" in result.stdout and "Running stage 'prepare'" in result.stdout
    assert (project / "dvc.lock").exists()
    assert json.loads((project / "data/prepared/stats.json").read_text())["splits"]["test"]["reviews"] == 80
    assert "up to date" in run(["dvc", "status", "prepare"], project).stdout.lower()
    assert "Running stage" not in run(["dvc", "repro", "prepare"], project).stdout

    # Changing a prepare knob reruns prepare only; the download is not repeated. The vocabulary cap is not
    # prepare's: the store keeps every training word, and each run caps it when it loads it.
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "first repro"], project)
    before = (project / "data/prepared/train/tokens.npy").read_bytes()
    val_reviews = json.loads((project / "data/prepared/stats.json").read_text())["splits"]["val"]["reviews"]
    result = run(["dvc", "exp", "run", "-S", "prepare.num_words=200", "prepare"], project)
    assert "Running stage 'prepare'" not in result.stdout
    assert (project / "data/prepared/train/tokens.npy").read_bytes() == before
    result = run(["dvc", "exp", "run", "-S", "prepare.val_fraction=0.25", "prepare"], project)
    assert "Running stage 'prepare'" in result.stdout and "Running stage 'download'" not in result.stdout
    assert json.loads((project / "data/prepared/stats.json").read_text())["splits"]["val"]["reviews"] > val_reviews


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_ARCHIVE.is_file(), reason=f"{SHARED_ARCHIVE} not present")
def test_full_archive_has_the_published_counts(project):
    prepared = prepare(project, SHARED_ARCHIVE)
    splits = json.loads((prepared / "stats.json").read_text())["splits"]
    assert splits["train"]["reviews"] + splits["val"]["reviews"] == 25_000
    assert splits["test"] == splits["test"] | {"reviews": 25_000, "pos": 12_500, "neg": 12_500}
    assert splits["val"] | {"reviews": 5_000, "pos": 2_500, "neg": 2_500} == splits["val"]
    assert splits["train"]["pos"] == splits["train"]["neg"] == 10_000
    assert len(set(names(prepared, "train")) | set(names(prepared, "val"))) == 25_000
