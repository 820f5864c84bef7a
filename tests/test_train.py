"""The train stage end to end: real DVC in a git repository, a real MLflow SQLite store, a real `mlflow ui`."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

from tests.conftest import SMALL_ARCHIVE, command_env, free_port, listening_hosts, run, set_params

EXPERIMENTS = ["dense", "simplernn", "lstm", "gru", "lstm_maxlen500"]
SEEDS = [1, 2]  # two replicates each: the real matrix of stages, shrunk
REPLICATES = [(name, seed) for name in EXPERIMENTS for seed in SEEDS]


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


def test_dvc_repro_trains_every_replicate_and_mlflow_groups_them(prepared: Path):
    project = prepared
    result = run(["dvc", "repro", "train"], project, IMDB_ARCHIVE=str(SMALL_ARCHIVE))  # every train@ stage
    for name, seed in REPLICATES:
        assert f"Running stage 'train@{name}-{seed}'" in result.stdout
        assert (project / f"models/{name}/seed{seed}.keras").is_file()
        metrics = json.loads((project / f"metrics/train/{name}/seed{seed}.json").read_text())
        assert {"val/accuracy", "best/val/accuracy", "best/epoch", "last/val/accuracy", "kept/epoch", "keep",
                "epoch/seconds", "total/seconds", "parameters"} <= set(metrics)
        assert metrics["keep"] == "best" and metrics["seed"] == seed and metrics["experiment"] == name
        history = (project / f"plots/train/{name}/seed{seed}.csv").read_text().splitlines()
        assert history[0] == "epoch,train/accuracy,train/loss,val/accuracy,val/loss,epoch/seconds"
        assert len(history) == 2
        gradients = (project / f"metrics/train/{name}/seed{seed}-gradients.csv").read_text().splitlines()
        assert gradients[0] == "steps_before_end,init,epoch1,final"
        assert len(gradients) == 1 + (120 if name == "lstm_maxlen500" else 60)

    # Per-replicate files are plain outputs: `dvc metrics show` is left to the headline metrics.
    shown = run(["dvc", "metrics", "show", "--json"], project).stdout
    assert "metrics/train" not in shown
    plots = run(["dvc", "plots", "show", "-o", str(project / "dvc_plots")], project)
    assert "failed" not in (plots.stdout + plots.stderr).lower()
    assert "plots/train/lstm_maxlen500/seed2.csv" in (project / "dvc_plots/index.html").read_text()

    runs = runs_by_name(project)
    assert sorted(runs) == sorted(f"{name} seed {seed}" for name, seed in REPLICATES)
    lstm = runs["lstm seed 2"]
    assert lstm.info.status == "FINISHED"
    assert lstm.data.params | {"architecture": "lstm", "units": "32", "maxlen": "60", "batch_size": "128",
                               "optimizer": "rmsprop", "num_words": "300", "seed": "2",
                               "keep": "best"} == lstm.data.params
    assert lstm.data.tags["dvc.stage"] == "train@lstm-2" and lstm.data.tags["lab.experiment"] == "lstm"
    assert lstm.data.tags["seed"] == "2"
    assert len(lstm.data.tags["git.commit"]) == 40 and lstm.data.tags["git.dirty"] in ("true", "false")
    assert len(lstm.data.tags["data.sha256"]) == 64
    assert {"version.tensorflow", "version.keras", "version.mlflow", "seed"} <= set(lstm.data.tags)
    c = client(project)
    grouped = c.search_runs([lstm.info.experiment_id], "tags.`lab.experiment` = 'lstm'")
    assert sorted(r.data.tags["seed"] for r in grouped) == ["1", "2"]
    for metric in ("train/accuracy", "train/loss", "val/accuracy", "val/loss", "epoch/seconds"):
        assert [m.step for m in c.get_metric_history(lstm.info.run_id, metric)] == [1]
    assert {"gradient_reach/init", "gradient_reach/epoch1", "gradient_reach/final", "kept/epoch"} <= set(
        lstm.data.metrics)
    artifacts = {a.path for a in c.list_artifacts(lstm.info.run_id)}
    assert {"seed2.csv", "seed2-gradients.csv", "learning_curves.png", "model_summary.txt",
            "input_example.json"} <= artifacts
    model = mlflow.MlflowClient(c.tracking_uri).search_logged_models([lstm.info.experiment_id])
    assert len(model) == len(REPLICATES)
    assert all(m.source_run_id in {r.info.run_id for r in runs.values()} for m in model)
    # Artifacts live in the project root, not in git or DVC.
    assert (project / "mlruns").is_dir()
    status = run(["git", "status", "--porcelain", "--ignored"], project).stdout
    assert "!! mlflow.db" in status and "!! mlruns/" in status

    # A real `mlflow ui` started in the project root with no flags but a free port lists the runs.
    port = free_port()
    server = subprocess.Popen(["mlflow", "ui", "--port", str(port)], cwd=project, env=command_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = json.dumps({"experiment_ids": [lstm.info.experiment_id], "max_results": 100}).encode()
        for _ in range(120):
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search", body,
                                                 {"Content-Type": "application/json"})
                listed = json.load(urllib.request.urlopen(request, timeout=5))
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow ui did not answer on 127.0.0.1")
        assert listening_hosts(port) == {"127.0.0.1"}  # loopback only, with no --host flag
        assert sorted(r["info"]["run_name"] for r in listed["runs"]) == sorted(runs)
        artifact = urllib.request.urlopen(
            f"http://127.0.0.1:{port}/get-artifact?path=learning_curves.png&run_uuid={lstm.info.run_id}", timeout=10)
        assert artifact.read(8) == b"\x89PNG\r\n\x1a\n"
    finally:
        server.terminate()
        server.wait(timeout=30)

    # A no-op repro stays a no-op; adding a seed would train only that seed's replicates.
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "trained"], project)
    assert "Running stage" not in run(["dvc", "repro", "train"], project).stdout
    set_params(project, **{"base.seeds": [*SEEDS, 7]})
    planned = run(["dvc", "repro", "--dry", "train"], project).stdout
    assert sorted(re.findall(r"Running stage 'train@([\w-]+)'", planned)) == sorted(f"{n}-7" for n in EXPERIMENTS)
    run(["git", "checkout", "params.yaml"], project)

    # Changing lstm's units retrains lstm's replicates alone; a run in a temporary copy lands in this store.
    result = run(["dvc", "exp", "run", "--temp", "-S", "train.experiments.lstm.units=4", "train"], project)
    assert sorted(re.findall(r"Running stage 'train@([\w-]+)'", result.stdout)) == ["lstm-1", "lstm-2"]
    newest = runs_by_name(project)["lstm seed 1"]
    assert newest.data.params["units"] == "4" and newest.data.tags["dvc.exp_name"]
    assert ".dvc/tmp/exps" not in newest.info.artifact_uri


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


def test_same_seed_with_determinism_gives_identical_results_and_seeds_differ(prepared: Path):
    set_params(prepared, **{"base.deterministic": True, "train.experiments.gru.epochs": 2})
    results = []
    for seed in (1, 1, 2):
        run(["python", "-m", "pipeline.train", "--experiment", "gru", "--seed", str(seed)], prepared)
        metrics = json.loads((prepared / f"metrics/train/gru/seed{seed}.json").read_text())
        gradients = (prepared / f"metrics/train/gru/seed{seed}-gradients.csv").read_text()
        results.append(({k: v for k, v in metrics.items() if "seconds" not in k and k != "seed"}, gradients))
    assert results[0] == results[1]  # bit for bit: every metric and every gradient norm
    assert results[0][1] != results[2][1]  # another seed is another sample
