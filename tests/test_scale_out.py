"""The README's scale-out recipe, end to end on one machine: PostgreSQL (Debian package) as the
Optuna storage and as the backend store of an `mlflow server` with proxied artifacts, two tune
workers on one study (the DVC stage and an extra `--trials-only` worker), then `dvc repro` of
confirm, evaluate and report on the result, and a DVC remote from which a fresh clone pulls the models."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import mlflow
import optuna
import pytest

from pipeline import config
from pipeline.tune import check_space, study_name
from tests import services
from tests.conftest import SMALL_ARCHIVE, command_env, free_port, run, set_params

N_TRIALS = 5


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    yield from services.server(free_port())


def test_two_workers_on_a_tracking_server_then_evaluate_report_and_a_dvc_remote(project: Path, tmp_path: Path,
                                                                                postgres: str):
    set_params(project, **{
        "prepare.limit": 20, "prepare.num_words": 300, "base.seeds": [1],
        "train.experiments.lstm.epochs": 2, "train.experiments.lstm.maxlen": 40, "train.experiments.lstm.units": 4,
        "evaluate.memory_content": 10, "evaluate.memory_distances": [0, 10, 20],  # fits lstm's 40 steps
        "speed.rounds": 2, "speed.reviews": 40,
        "tune.n_trials": N_TRIALS, "tune.timeout": 0, "tune.pruner": "none",
        "tune.space": {"maxlen": {"low": 20, "high": 60, "log": False}, "epochs": {"low": 4, "high": 6, "log": False}},
    })
    run(["dvc", "repro", "prepare"], project, IMDB_ARCHIVE=str(SMALL_ARCHIVE))
    run(["git", "commit", "-qam", "small params"], project)
    params = config.load(project / "params.yaml")
    name = study_name(params, "lstm", check_space(params, "lstm", 10_000))
    storage = services.create_database(postgres, "optuna")
    artifacts = tmp_path / "artifacts"  # on real hosts: a shared folder or s3://...

    with services.mlflow_server(services.create_database(postgres, "mlflow"), artifacts, free_port(),
                                log=tmp_path / "mlflow-server.log") as server:
        stores = {"OPTUNA_STORAGE": storage, "MLFLOW_TRACKING_URI": server}
        extra = subprocess.Popen(["python", "-m", "pipeline.tune", "--architecture", "lstm", "--trials-only"],
                                 cwd=project, env=command_env(**stores), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        try:
            stage = run(["dvc", "repro", "-s", "tune@lstm"], project, **stores)
            extra_output = extra.communicate(timeout=600)[0]
        finally:
            extra.kill()
            extra.wait()
        assert extra.returncode == 0, extra_output
        assert "this worker wrote no outputs" in extra_output and "Running stage 'tune@lstm'" in stage.stdout

        # One study, exactly N_TRIALS trials, from both workers.
        trials = optuna.load_study(study_name=name, storage=storage).trials
        assert len(trials) == N_TRIALS and {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
        assert len({t.user_attrs["owner"] for t in trials}) == 2

        # Every trial's nested run is on the server, under one parent; the best model is in the artifact store.
        client = mlflow.MlflowClient(server)
        runs = [client.get_run(t.user_attrs["mlflow_run_id"]) for t in trials]
        parents = {r.data.tags["mlflow.parentRunId"] for r in runs}
        assert len(parents) == 1 and {r.info.status for r in runs} == {"FINISHED"}
        # One value per epoch trained (train.patience may stop a trial before its sampled epochs).
        assert [len(client.get_metric_history(r.info.run_id, "val/accuracy")) for r in runs] == [
            t.user_attrs["epochs_trained"] for t in trials]
        assert all(t.user_attrs["epochs_trained"] <= t.params["epochs"] for t in trials)
        best = optuna.load_study(study_name=name, storage=storage).best_trial
        assert [a.path for a in client.list_artifacts(best.user_attrs["mlflow_run_id"], "model")] == [
            f"model/trial-{best.number}.keras"]
        assert list(artifacts.rglob(f"trial-{best.number}.keras"))
        assert not (project / "mlflow.db").exists() and not (project / "mlruns").exists()  # all on the server

        # confirm retrains the study's best configuration (one seed here) on this host, logging to the server;
        # evaluate and report consume it, and the test metrics reach the confirmed run.
        # (evaluate and report also depend on the train stages' folders, committed with the results of a
        # full run; a project that never trained keeps them with a placeholder, as git drops empty folders.)
        for folder in ("metrics/train", "plots/train"):
            (project / folder).mkdir(parents=True, exist_ok=True)
            (project / folder / ".gitkeep").touch()
        # confirm@ depends on the default experiment's replicate of its seed (reused when the default wins).
        run(["dvc", "repro", "-s", "train@lstm-1"], project, **stores)
        run(["dvc", "repro", "-s", "confirm@lstm-1"], project, **stores)
        run(["dvc", "repro", "-s", "evaluate"], project, **stores)
        run(["dvc", "repro", "-s", "speed"], project, **stores)  # the report's other input of this host
        run(["dvc", "repro", "-s", "report"], project, **stores)
        evaluation = json.loads((project / "reports/evaluation.json").read_text())
        assert sorted(evaluation) == ["champion", "lstm", "lstm-tuned"]
        experiment = client.get_run(parents.pop()).info.experiment_id
        [confirmed] = client.search_runs([experiment], "tags.`dvc.stage` = 'confirm@lstm-1'")
        assert confirmed.data.tags["lab.study"] == name
        assert confirmed.data.params["maxlen"] == str(best.params["maxlen"])
        assert confirmed.data.metrics["test/accuracy"] == evaluation["lstm-tuned"]["test/accuracy/mean"]
        assert "| lstm-tuned |" in (project / "reports/comparison.md").read_text()

    # A DVC remote carries data and models to another host: a fresh clone pulls the tuned model.
    run(["dvc", "remote", "add", "-d", "shared", str(tmp_path / "dvc-remote")], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "tuned on two workers"], project)
    run(["dvc", "push"], project)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    stages = ["download", "prepare", "train@lstm-1", "tune@lstm", "confirm@lstm-1", "evaluate"]
    run(["dvc", "pull", *stages], clone)
    for tuned in ("models/lstm-tuned.keras", "models/lstm-tuned/seed1.keras"):
        assert (clone / tuned).read_bytes() == (project / tuned).read_bytes()
    status = run(["dvc", "status", *stages], clone).stdout
    assert "changed" not in status and "deleted" not in status, status
