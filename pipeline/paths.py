"""Every file a stage reads or writes, named once. Relative to the project root,
where DVC runs each stage; dvc.yaml names the same paths."""

import os
from collections.abc import Callable
from pathlib import Path

from pipeline.stage import signals_deferred

RAW_ARCHIVE = Path("data/raw/aclImdb_v1.tar.gz")
# The stores, unless MLFLOW_TRACKING_URI / OPTUNA_STORAGE name others (outside DVC: they accumulate).
MLFLOW_DB = Path("mlflow.db")
MLFLOW_ARTIFACTS = Path("mlruns")
OPTUNA_DB = Path("optuna.db")
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


# One replicate of a default experiment is (experiment, seed); its files sit in a folder per experiment.


def model_path(name: str, seed: int) -> Path:
    return MODELS_DIR / name / f"seed{seed}.keras"


def train_metrics_path(name: str, seed: int) -> Path:
    return TRAIN_METRICS_DIR / name / f"seed{seed}.json"


def train_history_path(name: str, seed: int) -> Path:
    """Per-epoch history, declared as DVC plots."""
    return TRAIN_PLOTS_DIR / name / f"seed{seed}.csv"


def train_gradients_path(name: str, seed: int) -> Path:
    """Input-gradient norm per step at initialisation, after epoch 1 and for the kept model (claim 5)."""
    return TRAIN_METRICS_DIR / name / f"seed{seed}-gradients.csv"


def tuned_name(architecture: str) -> str:
    """The model name of a study's best configuration retrained with each seed (confirm stage), e.g. lstm-tuned:
    its replicates' files are those of an experiment of that name (model_path, train_metrics_path, ...)."""
    return f"{architecture}-tuned"


def tuned_model_path(architecture: str) -> Path:
    """The best trial's own model (tune stage), for inspection: evaluate scores the confirmed replicates."""
    return MODELS_DIR / f"{architecture}-tuned.keras"


TUNING_DIR = Path("reports/tuning")
# Every best-so-far trial model; outside DVC, which deletes a stage's outputs before it runs.
TRIAL_MODELS = Path("optuna-models")


def tuning_report_path(architecture: str, suffix: str = ".json") -> Path:
    """The study summary (DVC metrics); suffix "-trials.csv" names its trials table."""
    return TUNING_DIR / f"{architecture}{suffix}"


# evaluate: one small headline metrics file (dvc exp show), and the detail behind it.
EVALUATION = Path("reports/evaluation.json")  # per model: mean and sd of test accuracy; the champion
EVALUATION_DIR = Path("reports/evaluation")
REPLICATES = EVALUATION_DIR / "replicates.csv"  # one row per evaluated model file (experiment x seed)
SUMMARY = EVALUATION_DIR / "summary.json"  # per model: n, mean, sd, min, max, 95% CI, per-seed values
ROC_DIR = EVALUATION_DIR / "roc"  # <model>.csv: fpr, tpr of the first seed (DVC plots)
CONFUSION_DIR = EVALUATION_DIR / "confusion"  # <model>.csv: actual, predicted of the first seed (DVC plots)
PAIRWISE = EVALUATION_DIR / "pairwise.csv"  # McNemar's exact test on predictions pooled over seeds, every pair
GRADIENTS = EVALUATION_DIR / "gradients.csv"  # relative input-gradient norm per step, median over seeds (plots)
GRADIENT_REACH = EVALUATION_DIR / "gradient_reach.csv"  # per model, seed and snapshot: the gradient's reach
MEMORY = EVALUATION_DIR / "memory.csv"  # memory probe: accuracy as content moves away from the window's end
EVALUATION_RUN = EVALUATION_DIR / "run.json"  # machine, date, data hash and commit of the evaluation

# speed: epochs of each architecture timed side by side in one process (claim 4)
SPEED = Path("reports/speed.json")
# The tutorial's own code on the prepared data (bench/tutorial_reference.py; committed, not a DVC output)
TUTORIAL_REFERENCE = Path("reports/tutorial-reference.json")

# register: what the registry aliases point to after the stage
REGISTRY_REPORT = Path("reports/registry.json")

# report
COMPARISON_MD = Path("reports/comparison.md")
COMPARISON_HTML = Path("reports/comparison.html")
FIGURES_DIR = Path("reports/figures")


def temporary_for(path: Path) -> Path:
    """A hidden sibling to write ``path`` into before renaming it into place (one per process)."""
    return path.with_name(f".{path.name}.{os.getpid()}.partial{path.suffix}")


def staged_copy(path: Path, write: Callable[[Path], object]) -> Path:
    """``write(temporary)`` into ``path``'s temporary sibling (``model.save``, a file copy), for
    ``write_outputs(staged=...)`` or a rename; if writing fails, the temporary is removed."""
    temporary = temporary_for(path)
    temporary.parent.mkdir(parents=True, exist_ok=True)
    try:
        write(temporary)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write a whole file or nothing: a temporary sibling, then a rename."""
    write_outputs({path: content})


def write_outputs(files: dict[Path, str | bytes], *, staged: dict[Path, Path] | None = None,
                  replace_folders: tuple[Path, ...] = ()) -> None:
    """Write a stage's outputs all or none.

    Every file goes to a temporary sibling first; a full disk, a file-size limit or a
    read-only folder fails there, the temporaries are removed and the previous outputs
    stay as they were. Only then are they renamed into place (renames need no space).
    ``staged`` maps outputs to temporaries the caller already wrote (a saved model);
    in ``replace_folders`` the files not written now are removed.
    """
    staged = dict(staged or {})
    created: list[Path] = []
    try:
        for path, content in files.items():
            for folder in reversed([path.parent, *path.parent.parents]):
                if not folder.exists():
                    folder.mkdir()
                    created.append(folder)
            staged[path] = temporary = temporary_for(path)
            with open(temporary, "wb") as out:
                out.write(content if isinstance(content, bytes) else content.encode("utf-8"))
    except BaseException:
        for temporary in staged.values():
            temporary.unlink(missing_ok=True)
        for folder in reversed(created):
            folder.rmdir()
        raise
    keep = set(staged) | set(staged.values())
    with signals_deferred():  # an interrupt cannot land between two renames
        for folder in replace_folders:
            for stale in folder.glob("*"):
                if stale.is_file() and stale not in keep:
                    stale.unlink()
        for path, temporary in staged.items():
            os.replace(temporary, path)
