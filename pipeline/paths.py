"""Every file a stage reads or writes, named once. Relative to the project root,
where DVC runs each stage; dvc.yaml names the same paths."""

import os
from pathlib import Path

RAW_ARCHIVE = Path("data/raw/aclImdb_v1.tar.gz")
PREPARED_DIR = Path("data/prepared")
VOCABULARY = PREPARED_DIR / "vocab.tsv"
STATS = PREPARED_DIR / "stats.json"

SPLITS = ("train", "val", "test")


def split_dir(split: str, prepared_dir: Path = PREPARED_DIR) -> Path:
    """Folder holding one split's tokens.npy, offsets.npy, labels.npy, ratings.npy, names.txt."""
    return prepared_dir / split

MODELS_DIR = Path("models")
TRAIN_METRICS_DIR = Path("metrics/train")
TRAIN_PLOTS_DIR = Path("plots/train")


def model_path(name: str) -> Path:
    return MODELS_DIR / f"{name}.keras"


def train_metrics_path(name: str) -> Path:
    return TRAIN_METRICS_DIR / f"{name}.json"


def train_history_path(name: str) -> Path:
    """Per-epoch history, declared as DVC plots."""
    return TRAIN_PLOTS_DIR / f"{name}.csv"


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write a whole file or nothing: a temporary sibling, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    if isinstance(content, bytes):
        temporary.write_bytes(content)
    else:
        temporary.write_text(content, encoding="utf-8")
    os.replace(temporary, path)
