"""The whole pipeline end to end, once: `python -m pipeline.repro` (what `./lab.sh pipeline` runs) on a tiny
slice of the data, with real DVC in a git repository, a real MLflow SQLite store, a real Optuna storage and a
real `mlflow ui`. The tests below read that one run; the last one changes it (a new seed, an experiment)."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline import probes
from tests.conftest import SMALL_ARCHIVE, command_env, free_port, listening_hosts, make_project, run, set_params
from tests.test_evaluate import read_csv
from tests.test_train import EXPERIMENTS, SEEDS, client, runs_by_name, shrink

REPLICATES = [(name, seed) for name in EXPERIMENTS for seed in SEEDS]
ARCHITECTURES = ["dense", "simplernn", "lstm", "gru"]
STUDIED = ["lstm", "gru"]  # tune.architectures: a study each, its best configuration confirmed with every seed
TUNED = [f"{a}-tuned" for a in STUDIED]
MODELS = EXPERIMENTS + TUNED
FILES = len(MODELS) * len(SEEDS)  # model files evaluated
TUNE = {"tune.architectures": STUDIED, "tune.n_trials": 2, "tune.timeout": 0, "tune.warmup_epochs": 0,
        "tune.space": {"maxlen": {"low": 20, "high": 60, "log": False}, "units": {"low": 4, "high": 8, "log": False},
                       "epochs": {"low": 1, "high": 2, "log": False}}}


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    project = make_project(tmp_path_factory.mktemp("pipeline"))
    shrink(project, **TUNE)
    run(["git", "commit", "-qam", "tiny params"], project)
    # Through the parallel runner (./lab.sh pipeline): every stage by `dvc repro --single-item`, two at a time.
    result = run(["python", "-m", "pipeline.repro", "--jobs", "2"], project, IMDB_ARCHIVE=str(SMALL_ARCHIVE))
    return project, result.stdout


def replicate_runs(project: Path) -> dict:
    return {name: r for name, r in runs_by_name(project).items() if "lab.experiment" in r.data.tags}


def test_the_runner_runs_every_stage_through_the_report(pipeline_run):
    project, output = pipeline_run
    assert "Running stage 'evaluate'" in output and "Running stage 'report'" in output
    # download, prepare, 5 x 2 train, speed, 2 tune, 2 x 2 confirm, evaluate, register, report
    assert "== all 22 stages done" in output and "up to 2 at a time" in output
    assert "Data and pipelines are up to date" in run(["dvc", "status"], project).stdout
    assert f"[{FILES}/{FILES}] gru-tuned seed {SEEDS[-1]}: test/accuracy" in output
    for architecture in STUDIED:
        for seed in SEEDS:
            assert f"Running stage 'confirm@{architecture}-{seed}'" in output

    evaluation = json.loads((project / "reports/evaluation.json").read_text())
    assert sorted(evaluation) == sorted([*MODELS, "champion"])
    for name in MODELS:  # the tuned models too: distributions over the same seeds
        assert evaluation[name]["n"] == len(SEEDS) and evaluation[name]["test/accuracy/sd"] is not None
        assert 0 <= evaluation[name]["test/accuracy/mean"] <= 1
        assert len((project / f"reports/evaluation/confusion/{name}.csv").read_text().splitlines()) == 41
        assert (project / f"reports/evaluation/roc/{name}.csv").read_text().startswith("fpr,tpr\n")
    assert evaluation["champion"]["model"] in MODELS
    replicates = read_csv(project / "reports/evaluation/replicates.csv")
    assert len(replicates) == FILES
    assert len(read_csv(project / "reports/evaluation/pairwise.csv")) == len(MODELS) * (len(MODELS) - 1) // 2
    assert "simplernn/final" in (project / "reports/evaluation/gradients.csv").read_text().splitlines()[0]
    probed = len(ARCHITECTURES) * len(SEEDS)  # every replicate of dense, simplernn, lstm, gru
    assert len(read_csv(project / "reports/evaluation/gradient_reach.csv")) == probed * 3  # snapshots
    memory = read_csv(project / "reports/evaluation/memory.csv")
    assert len(memory) == probed * len(probes.FILLERS) * len({r["distance"] for r in memory})
    run_info = json.loads((project / "reports/evaluation/run.json").read_text())
    assert len(run_info["git.commit"]) == 40 and run_info["machine"]["cores"] >= 1
    speed = json.loads((project / "reports/speed.json").read_text())
    assert speed["models"] == ARCHITECTURES and all(len(speed["seconds"][m]) == 2 for m in ARCHITECTURES)

    # The report: every section, figures as real PNGs, an HTML page that needs nothing from outside.
    markdown = (project / "reports/comparison.md").read_text()
    for heading in ("## Results", "## The tutorial's claims", "## Does tuning help?", "## Learning curves", "## Tuning",
                    "## Review lengths"):
        assert heading in markdown
    # Every claim, and "tuning helps" for each study, is judged from the replicates (two seeds here), none is left
    # "not measured".
    assert len(re.findall(r"\| (supported|refuted|inconclusive) \|", markdown)) == 5 + len(STUDIED)
    assert "Missing results" not in markdown
    figures = sorted((project / "reports/figures").glob("*.png"))
    for figure in figures:
        data = figure.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
        assert f"](figures/{figure.name})" in markdown
    page = (project / "reports/comparison.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(figures)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page) and "<script" not in page and "<link" not in page

    # MLflow has the test metrics in each model file's runs.
    runs = runs_by_name(project)
    scored = {(r["model"], r["seed"]): float(r["test/accuracy"]) for r in replicates}
    assert runs["lstm seed 2"].data.metrics["test/accuracy"] == scored["lstm", "2"]
    assert runs["gru-tuned seed 2"].data.metrics["test/accuracy"] == scored["gru-tuned", "2"]
    assert runs["gru-tuned seed 2"].data.tags["lab.study"] == json.loads(
        (project / "reports/tuning/gru.json").read_text())["study"]
    artifacts = {a.path for a in client(project).list_artifacts(runs["dense seed 1"].info.run_id)}
    assert "test_metrics.json" in artifacts


def test_every_replicate_is_trained_with_its_records_and_dvc_shows_them(pipeline_run):
    project, output = pipeline_run
    for name, seed in REPLICATES:
        assert f"Running stage 'train@{name}-{seed}'" in output
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

    # `dvc metrics show` is the headline metrics alone, not the per-replicate files; the plots hold both.
    shown = json.dumps(json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout))
    assert "test/accuracy/mean" in shown and "reports/evaluation.json" in shown and "metrics/train" not in shown
    plots = run(["dvc", "plots", "show", "-o", str(project / "dvc_plots")], project)
    assert "failed" not in (plots.stdout + plots.stderr).lower()
    index = (project / "dvc_plots/index.html").read_text()
    assert "ROC curve" in index and "Gradient reaching each step" in index
    assert "plots/train/lstm_maxlen500/seed2.csv" in index


def test_mlflow_groups_the_replicates_and_mlflow_ui_lists_every_run(pipeline_run):
    project, _ = pipeline_run
    runs = replicate_runs(project)
    assert sorted(runs) == sorted(f"{name} seed {seed}" for name in MODELS for seed in SEEDS)
    lstm = runs["lstm seed 2"]
    assert lstm.info.status == "FINISHED"
    assert lstm.data.params | {"architecture": "lstm", "units": "32", "maxlen": "60", "batch_size": "128",
                               "optimizer": "rmsprop", "num_words": "300", "seed": "2",
                               "keep": "best"} == lstm.data.params
    assert lstm.data.tags["dvc.stage"] == "train@lstm-2" and lstm.data.tags["lab.experiment"] == "lstm"
    assert lstm.data.tags["seed"] == "2"
    assert len(lstm.data.tags["git.commit"]) == 40 and lstm.data.tags["git.dirty"] in ("true", "false")
    assert len(lstm.data.tags["data.sha256"]) == 64
    backend = lstm.data.tags["version.keras.backend"]
    assert backend in ("tensorflow", "jax") and {f"version.{backend}", "version.keras", "version.mlflow",
                                                 "seed"} <= set(lstm.data.tags)
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
    replicate_ids = {r.info.run_id for r in runs.values()}
    models = [m for m in c.search_logged_models([lstm.info.experiment_id]) if m.source_run_id in replicate_ids]
    assert sorted(m.source_run_id for m in models) == sorted(replicate_ids)  # one model per replicate
    # evaluate's test metrics are attached to each logged model too (the Models view shows them).
    lstm_model = next(m for m in models if m.source_run_id == lstm.info.run_id)
    assert "test/accuracy" in {m.key for m in c.get_logged_model(lstm_model.model_id).metrics}

    # The experiment opens on its runs (MLflow 3's experiment kind), and the Dataset column names the splits.
    assert c.get_experiment(lstm.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    contexts = {(i.dataset.name, {t.key: t.value for t in i.tags}["mlflow.data.context"])
                for i in c.get_run(lstm.info.run_id).inputs.dataset_inputs}
    assert contexts == {("imdb-train", "training"), ("imdb-val", "validation"), ("imdb-test", "testing")}
    assert len({i.dataset.digest for i in c.get_run(lstm.info.run_id).inputs.dataset_inputs}) == 3
    # The same provenance on every kind of run: replicate, tune parent and trial, register.
    every_kind = runs_by_name(project)
    register = next(r for name, r in every_kind.items() if name.startswith("register-"))
    for found, stage in ((every_kind["tune-lstm"], "tune@lstm"), (every_kind["lstm-trial-0"], "tune@lstm"),
                         (register, "register")):
        assert found.data.tags["dvc.stage"] == stage
        assert found.data.tags["git.commit"] == lstm.data.tags["git.commit"]
        assert found.data.tags["data.sha256"] == lstm.data.tags["data.sha256"]
        assert found.data.tags["version.keras"] == lstm.data.tags["version.keras"]
    # Artifacts live in the project root, not in git or DVC.
    assert (project / "mlruns").is_dir()
    status = run(["git", "status", "--porcelain", "--ignored"], project).stdout
    assert "!! mlflow.db" in status and "!! mlruns/" in status

    # A real `mlflow ui` started in the project root with no flags but a free port lists every run.
    every = {r.info.run_id for r in c.search_runs([lstm.info.experiment_id], max_results=1000)}
    port = free_port()
    server = subprocess.Popen(["mlflow", "ui", "--port", str(port)], cwd=project, env=command_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = json.dumps({"experiment_ids": [lstm.info.experiment_id], "max_results": 1000}).encode()
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
        assert {r["info"]["run_id"] for r in listed["runs"]} == every
        artifact = urllib.request.urlopen(
            f"http://127.0.0.1:{port}/get-artifact?path=learning_curves.png&run_uuid={lstm.info.run_id}", timeout=10)
        assert artifact.read(8) == b"\x89PNG\r\n\x1a\n"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_nothing_reruns_then_a_new_seed_or_a_changed_experiment_reruns_only_its_replicates(pipeline_run):
    project, _ = pipeline_run  # last in this module: it commits and runs an experiment in the project
    assert "Running stage" not in run(["dvc", "repro"], project, IMDB_ARCHIVE=str(SMALL_ARCHIVE)).stdout
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "ran"], project)
    set_params(project, **{"base.seeds": [*SEEDS, 7]})
    planned = run(["dvc", "repro", "--dry", "train"], project).stdout
    assert sorted(re.findall(r"Running stage 'train@([\w-]+)'", planned)) == sorted(f"{n}-7" for n in EXPERIMENTS)
    run(["git", "checkout", "params.yaml"], project)

    # Changing lstm's units retrains lstm's replicates alone; a run in a temporary copy lands in this store.
    result = run(["dvc", "exp", "run", "--temp", "-S", "train.experiments.lstm.units=4", "train"], project)
    assert sorted(re.findall(r"Running stage 'train@([\w-]+)'", result.stdout)) == ["lstm-1", "lstm-2"]
    newest = replicate_runs(project)["lstm seed 1"]
    assert newest.data.params["units"] == "4" and newest.data.tags["dvc.exp_name"]
    assert ".dvc/tmp/exps" not in newest.info.artifact_uri
