"""Every file a stage reads or writes, named once. Relative to the project root,
where DVC runs each stage; dvc.yaml names the same paths."""

from pathlib import Path

RAW_ARCHIVE = Path("data/raw/aclImdb_v1.tar.gz")
PREPARED_DIR = Path("data/prepared")
VOCABULARY = PREPARED_DIR / "vocab.tsv"
STATS = PREPARED_DIR / "stats.json"

SPLITS = ("train", "val", "test")


def split_dir(split: str, prepared_dir: Path = PREPARED_DIR) -> Path:
    """Folder holding one split's tokens.npy, offsets.npy, labels.npy, ratings.npy, names.txt."""
    return prepared_dir / split
