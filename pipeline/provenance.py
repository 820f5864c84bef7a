"""Where a result came from: git commit, data hash, library versions, machine, DVC stage.

Every MLflow run (train replicates, tune parents and trials, register) carries the same
provenance tags (:func:`run_tags`) and names the prepared splits it read as MLflow datasets
(:func:`split_datasets`: metadata only, digest from the files' SHA-256), so `mlflow ui` shows
them in its Dataset column. evaluate's run.json and the benchmarks record the same facts.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path

from pipeline.paths import PREPARED_DIR, split_dir

CODE = ("pipeline", "params.yaml", "dvc.yaml", "pyproject.toml", "constraints.txt")  # what decides a run's results
DIGEST_CHARS = 16  # of the SHA-256 in an MLflow dataset digest (MLflow stores at most 36); tags keep all 64


def git_state(root: Path) -> tuple[str, bool]:
    """(commit, dirty) of the repository at ``root``; ("unknown", True) outside git.

    Dirty means the code, params or pipeline differ from the commit; the pipeline's own
    outputs (metrics, reports, dvc.lock) change during every run and do not count.
    """
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--", *CODE], cwd=root, capture_output=True,
                                text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return commit.stdout.strip(), bool(status.stdout.strip())


def data_hash(prepared_dir: Path) -> str:
    """SHA-256 over the prepared files (names and bytes): which data a run saw."""
    digest = hashlib.sha256()
    for path in sorted(p for p in prepared_dir.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(prepared_dir)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The hash that ties a saved model to the MLflow runs that made it (tag model.sha256)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_tags(root: Path, *, stage: str, seed: int | None = None) -> dict[str, str]:
    """The provenance tags of every run: git state, data hash, versions, DVC stage (and experiment), seed."""
    commit, dirty = git_state(root)
    tags = {"git.commit": commit, "git.dirty": str(dirty).lower(), "data.sha256": data_hash(root / PREPARED_DIR),
            "dvc.stage": os.environ.get("DVC_STAGE") or stage}
    tags |= {f"version.{name}": version for name, version in versions().items()}
    if seed is not None:
        tags["seed"] = str(seed)
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
    return tags


def split_datasets(root: Path, splits: dict[str, str]) -> dict[str, list]:
    """The arguments of ``mlflow.log_inputs`` for prepared splits ({split: context}, e.g. {"train": "training"}).

    Metadata only: the source is the split's folder in the project (``data/prepared/train``), the
    digest the first hex digits of its files' SHA-256; nothing is copied into MLflow.
    """
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    datasets = []
    for split in splits:
        folder = split_dir(split)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLflow warns that a relative path may not resolve elsewhere
            source = resolve_dataset_source(folder.as_posix())
        datasets.append(MetaDataset(source, name=f"imdb-{split}",
                                    digest=data_hash(root / folder)[:DIGEST_CHARS]))
    return {"datasets": datasets, "contexts": list(splits.values()), "tags_list": [{} for _ in datasets]}


def versions() -> dict[str, str]:
    """Versions of Keras, its running backend (tensorflow or jax), MLflow and Python."""
    import importlib

    import keras
    import mlflow

    backend = keras.backend.backend()  # its module is imported already, whichever distribution installed it
    return {"keras": keras.__version__, "keras.backend": backend,
            backend: importlib.import_module(backend).__version__, "mlflow": mlflow.__version__,
            "python": platform.python_version()}


def accelerators() -> list[str]:
    """The GPUs the running Keras backend sees (none on a CPU build)."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return [str(device) for device in jax.devices() if device.platform != "cpu"]
    import tensorflow as tf

    return [device.name for device in tf.config.list_physical_devices("GPU")]


def machine() -> dict:
    """What the numbers were measured on: CPU model, cores, memory, accelerators."""
    cpu = platform.processor() or platform.machine()
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")))
        memory = round(kib / 2**20, 1)
    except (OSError, StopIteration):
        memory = None
    gpus = accelerators()
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "memory_gib": memory, "gpus": gpus, "platform": platform.platform()}
