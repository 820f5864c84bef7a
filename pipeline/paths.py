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


def tuned_model_path(architecture: str) -> Path:
    return MODELS_DIR / f"{architecture}-tuned.keras"


TUNING_DIR = Path("reports/tuning")
# Every best-so-far trial model; outside DVC, which deletes a stage's outputs before it runs.
TRIAL_MODELS = Path("optuna-models")


def tuning_report_path(architecture: str, suffix: str = ".json") -> Path:
    """The study summary (DVC metrics); suffix "-trials.csv" names its trials table."""
    return TUNING_DIR / f"{architecture}{suffix}"


# evaluate: one metrics file for every model, and the data behind its plots.
EVALUATION = Path("reports/evaluation.json")
EVALUATION_DIR = Path("reports/evaluation")
ROC_DIR = EVALUATION_DIR / "roc"  # <model>.csv: fpr, tpr (DVC plots)
CONFUSION_DIR = EVALUATION_DIR / "confusion"  # <model>.csv: actual, predicted per test review (DVC plots)
PAIRWISE = EVALUATION_DIR / "pairwise.csv"  # McNemar's exact test for every pair of models
GRADIENTS = EVALUATION_DIR / "gradients.csv"  # input-gradient norm per time step (vanishing gradients)
EVALUATION_RUN = EVALUATION_DIR / "run.json"  # machine, date, data hash and commit of the evaluation

# register: what the registry aliases point to after the stage
REGISTRY_REPORT = Path("reports/registry.json")

# report
COMPARISON_MD = Path("reports/comparison.md")
COMPARISON_HTML = Path("reports/comparison.html")
FIGURES_DIR = Path("reports/figures")


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write a whole file or nothing: a temporary sibling, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")  # parallel workers never share one
    if isinstance(content, bytes):
        temporary.write_bytes(content)
    else:
        temporary.write_text(content, encoding="utf-8")
    os.replace(temporary, path)
