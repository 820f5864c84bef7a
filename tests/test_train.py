"""The train stage: bad settings and stores stop it before training, determinism, and the shared shrunk
parameters (`shrink`). Every replicate trained by `dvc repro` is checked end to end in test_pipeline.py."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from tests.conftest import SMALL_ARCHIVE, free_port, run, set_params

EXPERIMENTS = ["dense", "simplernn", "lstm", "gru", "lstm_maxlen500"]
SEEDS = [1, 2]  # two replicates each: the real matrix of stages, shrunk


def shrink(project: Path, epochs: int = 1, **extra) -> None:
    """Small data, one epoch, two seeds: the real pipeline, shrunk."""
    values = {"prepare.limit": 20, "prepare.num_words": 300, "base.seeds": SEEDS, "evaluate.probe_reviews": 16,
              "evaluate.memory_content": 20, "evaluate.memory_distances": [0, 20, 40], "speed.rounds": 2,
              "speed.reviews": 40, **extra}
    for name in EXPERIMENTS:
        values[f"train.experiments.{name}.epochs"] = epochs
        values[f"train.experiments.{name}.maxlen"] = 60 if name != "lstm_maxlen500" else 120
    set_params(project, **values)


def client(project: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def runs_by_name(project: Path) -> dict:
    c = client(project)
    experiment = c.get_experiment_by_name("imdb-sentiment")
    return {r.info.run_name: r for r in c.search_runs([experiment.experiment_id], order_by=["start_time ASC"])}


@pytest.fixture
def prepared(project: Path) -> Path:
    shrink(project)
    run(["git", "commit", "-qam", "small params"], project)
    run(["dvc", "repro", "prepare"], project, IMDB_ARCHIVE=str(SMALL_ARCHIVE))
    return project


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train.experiments.lstm.architecture": "transformer"},
         "train.experiments.lstm.architecture = 'transformer': must be one of dense, simplernn, lstm, gru"),
        ({"train.experiments.lstm.maxlen": 50000}, "train.experiments.lstm.maxlen = 50000: must be <= "),
        ({"train.batch_size": 0}, "params.yaml: train.batch_size = 0: must be an integer >= 1"),
        ({"train.optimizer": "adagrad"}, "train.optimizer = 'adagrad': must be one of rmsprop, adam, sgd"),
        ({"train.experiments.lstm.dropout": 1.0}, "train.experiments.lstm.dropout = 1.0: must be a number >= 0"),
        ({"train.bucketing": "yes"}, "train.bucketing = 'yes': must be true or false"),
    ],
)
def test_bad_settings_stop_before_training(prepared: Path, change, message):
    set_params(prepared, **change)
    result = run(["python", "-m", "pipeline.train", "--experiment", "lstm", "--seed", "1"], prepared, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (prepared / "mlflow.db").exists() and not list(prepared.glob("models/**/*.keras"))


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("foo://bar", "MLFLOW_TRACKING_URI = 'foo://bar': unusable (Model registry functionality is unavailable"),
        ("http://127.0.0.1:{port}", "no MLflow server answers"),
        ("postgresql://user:secret@127.0.0.1:{port}/mlflow", "postgresql://user:***@127.0.0.1"),
    ],
)
def test_unusable_tracking_store_stops_before_training(prepared: Path, uri, message):
    uri = uri.format(port=free_port())
    result = run(["python", "-m", "pipeline.train", "--experiment", "dense", "--seed", "1"], prepared, check=False,
                 MLFLOW_TRACKING_URI=uri)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1] and "secret" not in result.stderr
    assert not list(prepared.glob("models/**/*.keras"))


def test_unknown_experiment_or_seed_names_the_known_ones(prepared: Path):
    result = run(["python", "-m", "pipeline.train", "--experiment", "lstm2", "--seed", "1"], prepared, check=False)
    assert result.returncode == 2
    assert "train.experiments has no 'lstm2'; defined: dense, simplernn, lstm, gru, lstm_maxlen500" in result.stderr
    result = run(["python", "-m", "pipeline.train", "--experiment", "lstm", "--seed", "9"], prepared, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--seed 9: not in params.yaml base.seeds [1, 2]" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_same_seed_with_determinism_gives_identical_results_and_seeds_differ(prepared: Path, backend: str):
    """On both supported Keras backends: JAX, the default, and TensorFlow (KERAS_BACKEND=tensorflow)."""
    set_params(prepared, **{"base.deterministic": True, "train.experiments.gru.epochs": 2})
    results = []
    for seed in (1, 1, 2):
        run(["python", "-m", "pipeline.train", "--experiment", "gru", "--seed", str(seed)], prepared,
            KERAS_BACKEND=backend)
        metrics = json.loads((prepared / f"metrics/train/gru/seed{seed}.json").read_text())
        gradients = (prepared / f"metrics/train/gru/seed{seed}-gradients.csv").read_text()
        results.append(({k: v for k, v in metrics.items() if "seconds" not in k and k != "seed"}, gradients))
    assert results[0] == results[1]  # bit for bit: every metric and every gradient norm
    assert results[0][1] != results[2][1]  # another seed is another sample
