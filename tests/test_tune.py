"""The tune stage with a real Optuna SQLite storage, real MLflow store and a real optuna-dashboard."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
import urllib.request
from pathlib import Path

import mlflow
import optuna
import pytest

from pipeline import config
from pipeline.tune import check_space, study_name
from tests.conftest import ROOT, command_env, free_port, listening_hosts, run, set_params
from tests.conftest import TINY_SPACE as SPACE


def seed_study(project: Path) -> str:
    """Two finished trials that were excellent at epoch 2: any later 3- or 4-epoch trial is pruned there."""
    params = config.load(project / "params.yaml")
    name = study_name(params, "lstm", check_space(params, "lstm", 10_000))
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{project / 'optuna.db'}", direction="maximize")
    distributions = {"maxlen": optuna.distributions.IntDistribution(20, 60),
                     "units": optuna.distributions.IntDistribution(4, 8),
                     "epochs": optuna.distributions.IntDistribution(3, 4)}
    for _ in range(2):
        study.add_trial(optuna.trial.create_trial(
            params={"maxlen": 30, "units": 4, "epochs": 3}, distributions=distributions, value=0.0,
            intermediate_values={1: 0.0, 2: 0.999, 3: 0.999}))
    return name


def test_study_prunes_bridges_to_mlflow_resumes_and_shows_in_the_dashboard(tiny: Path):
    name = seed_study(tiny)
    result = run(["python", "-m", "pipeline.tune", "--architecture", "lstm"], tiny)
    assert "3 complete, 1 pruned, 0 failed" in result.stdout  # 2 seeded, then ours: the default and one pruned
    storage = f"sqlite:///{tiny / 'optuna.db'}"
    study = optuna.load_study(study_name=name, storage=storage)
    ours = study.trials[2:]
    assert [t.state for t in ours] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]
    assert ours[0].user_attrs["default"] is True and ours[0].params["units"] == 4

    summary = json.loads((tiny / "reports/tuning/lstm.json").read_text())
    assert summary["trials"] == {"complete": 3, "pruned": 1, "failed": 0, "cut": 0}
    assert summary["best_trial"] == 2 and summary["default_value"] == ours[0].value
    assert (tiny / "models/lstm-tuned.keras").is_file()
    assert {"value", "state"} <= set((tiny / "reports/tuning/lstm-trials.csv").read_text().splitlines()[0].split(","))

    client = mlflow.MlflowClient(f"sqlite:///{tiny / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("imdb-sentiment")
    runs = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id])}
    parent = runs[study.user_attrs["mlflow_parent_run_id"]]
    assert parent.info.status == "FINISHED" and parent.data.params["pruner"] == "median"
    children = [runs[t.user_attrs["mlflow_run_id"]] for t in ours]
    assert [c.info.status for c in children] == ["FINISHED", "KILLED"]
    assert [c.data.tags["optuna.state"] for c in children] == ["COMPLETE", "PRUNED"]
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert {"figures/optimization_history.png", "trials.csv"} <= {
        a.path for folder in ("", "figures") for a in client.list_artifacts(parent.info.run_id, folder or None)}

    # Rerunning adds nothing; a larger budget continues the same study and the same parent run.
    run(["python", "-m", "pipeline.tune", "--architecture", "lstm"], tiny)
    assert len(optuna.load_study(study_name=name, storage=storage).trials) == 4
    set_params(tiny, **{"tune.n_trials": 5})
    run(["python", "-m", "pipeline.tune", "--architecture", "lstm"], tiny)
    study = optuna.load_study(study_name=name, storage=storage)
    assert len(study.trials) == 5 and study.user_attrs["mlflow_parent_run_id"] == parent.info.run_id

    # A real optuna-dashboard, started as the README says (no --host), lists the study on loopback only.
    port = free_port()
    server = subprocess.Popen(["optuna-dashboard", "sqlite:///optuna.db", "--port", str(port)],
                              cwd=tiny, env=command_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                listed = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5))
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("optuna-dashboard did not answer")
        assert listening_hosts(port) == {"127.0.0.1"}
        summary = next(s for s in listed["study_summaries"] if s["study_name"] == name)
        detail = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}",
                                                  timeout=30))
        assert detail["objective_names"] == ["val_accuracy"]  # named, not "Objective 0"
        assert study.user_attrs["name"].startswith("lstm, then the first 10 hex digits of a SHA-256")
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize(
    ("change", "env", "message"),
    [
        ({"tune.space": {}}, {}, "tune.space must map at least one name"),
        ({"tune.space": {"maxlen": {"low": 10, "high": 90000, "log": False}}}, {}, "must lie within 1..",),
        ({"tune.space": {"units": {"low": 8, "high": 4, "log": False}}}, {}, "low = 8 must be below high = 4"),
        ({"tune.space": {"depth": {"low": 1, "high": 2, "log": False}}}, {}, "tune.space.depth is not a usable name"),
        ({"tune.space": {"pooling": {"low": 1, "high": 2}}}, {},
         "tune.space.pooling: pooling is searched over choices, e.g. {choices: [last, max, mean]}"),
        ({"tune.space": {"pooling": {"choices": ["last", "sum"]}}}, {},
         "tune.space.pooling: choice 'sum': each choice must be one of last, max, mean"),
        ({"tune.space": {"masking": {"choices": [False, True]}, "pooling": {"choices": ["max", "mean"]}}}, {},
         "tune.space.pooling: choices ['max', 'mean'] must include the default experiment's pooling = 'last'"),
        ({"tune.space": {"batch_size": {"choices": [16, 2.5]}}}, {},
         "tune.space.batch_size: choice 2.5: each choice must be an integer >= 1 and <= 65536"),
        ({"tune.space": {"maxlen": {"low": 20}}}, {}, "tune.space.maxlen: needs low and high"),
        ({}, {"OPTUNA_STORAGE": "notaurl"}, "OPTUNA_STORAGE = 'notaurl': unusable"),
        ({}, {"OPTUNA_STORAGE": "postgresql://u:secret@127.0.0.1:{port}/optuna"}, "postgresql://u:***@127.0.0.1"),
    ],
)
def test_bad_tuning_input_stops_with_one_line(tiny: Path, change, env, message):
    if change:
        set_params(tiny, **change)
    env = {k: v.format(port=free_port()) for k, v in env.items()}
    result = run(["python", "-m", "pipeline.tune", "--architecture", "lstm"], tiny, check=False, **env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr
    assert "secret" not in result.stderr and not (tiny / "models/lstm-tuned.keras").exists()


def test_a_trial_killed_mid_way_is_failed_on_the_next_start_and_the_study_goes_on(tiny: Path):
    # Long trials on a tiny slice, so the kill lands inside one; heartbeats every second.
    set_params(tiny, **{"train.experiments.lstm.epochs": 100, "tune.heartbeat": 1, "tune.n_trials": 2,
                        "tune.space": {"maxlen": SPACE["maxlen"], "units": SPACE["units"]}})
    params = config.load(tiny / "params.yaml")
    name = study_name(params, "lstm", check_space(params, "lstm", 10_000))
    storage = f"sqlite:///{tiny / 'optuna.db'}"
    worker = subprocess.Popen(["python", "-m", "pipeline.tune", "--architecture", "lstm"], cwd=tiny,
                              env=command_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # Keras prints "Epoch 3/100" as the third epoch starts: two are done and reported.
        # (Reading the worker's output, not polling the database it is writing to.)
        for line in worker.stdout:
            if line.startswith("Epoch 3/100"):
                break
        else:
            pytest.fail("the first trial never got going")
    finally:
        worker.kill()  # SIGKILL: no cleanup runs in the worker
        worker.wait()
    killed = optuna.load_study(study_name=name, storage=storage).trials[0]
    assert killed.state == optuna.trial.TrialState.RUNNING and killed.user_attrs["default"] is True
    runs = mlflow.MlflowClient(f"sqlite:///{tiny / 'mlflow.db'}")
    assert runs.get_run(killed.user_attrs["mlflow_run_id"]).info.status == "RUNNING"

    time.sleep(4)  # three missed heartbeats
    result = run(["python", "-m", "pipeline.tune", "--architecture", "lstm"], tiny)
    assert "2 complete, 0 pruned, 1 failed" in result.stdout
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert runs.get_run(killed.user_attrs["mlflow_run_id"]).info.status == "KILLED"
    # The default experiment was queued again and completed, so the tuned model still beats it or is it.
    again = [t for t in trials[1:] if t.user_attrs.get("default")]
    assert len(again) == 1 and again[0].state == optuna.trial.TrialState.COMPLETE


def test_a_trial_cut_by_the_clock_is_not_pruned_and_its_slot_runs_again(tiny: Path):
    # A one-second safety net against a 3-epoch default trial: the clock, started with the study, has run out
    # when the first epoch ends (building the model and compiling its step alone take longer).
    set_params(tiny, **{"train.experiments.lstm.epochs": 3, "tune.timeout": 1, "tune.n_trials": 1,
                        "tune.space": {"maxlen": SPACE["maxlen"], "units": SPACE["units"]}})
    params = config.load(tiny / "params.yaml")
    name = study_name(params, "lstm", check_space(params, "lstm", 10_000))
    storage = f"sqlite:///{tiny / 'optuna.db'}"
    outputs = {path: path.read_bytes() for path in (tiny / "reports/tuning").glob("lstm*")}  # the committed run's
    result = run(["python", "-m", "pipeline.tune", "--architecture", "lstm"], tiny, check=False)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "tune.timeout (1 s) stopped it at 0 of 1 trials (1 cut so far" in last and "Traceback" not in result.stderr
    # Nothing written: no tuned model, and the summaries already there are left as they were.
    assert not (tiny / "models/lstm-tuned.keras").exists()
    assert {path: path.read_bytes() for path in (tiny / "reports/tuning").glob("lstm*")} == outputs
    cut = optuna.load_study(study_name=name, storage=storage).trials[0]
    assert cut.state == optuna.trial.TrialState.FAIL and cut.user_attrs["cut"] == "tune.timeout"
    runs = mlflow.MlflowClient(f"sqlite:///{tiny / 'mlflow.db'}")
    child = runs.get_run(cut.user_attrs["mlflow_run_id"])
    assert child.info.status == "KILLED" and child.data.tags["optuna.state"] == "CUT"

    # Without the clock the slot runs again: the default is queued anew and completes; nothing counts as pruned.
    set_params(tiny, **{"tune.timeout": 0})
    result = run(["python", "-m", "pipeline.tune", "--architecture", "lstm"], tiny)
    assert "1 complete, 0 pruned, 0 failed, 1 cut by the clock" in result.stdout
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert trials[1].user_attrs["default"] is True
    summary = json.loads((tiny / "reports/tuning/lstm.json").read_text())
    assert summary["trials"] == {"complete": 1, "pruned": 0, "failed": 0, "cut": 1}


def test_the_study_name_changes_with_determinism_and_keeps_the_committed_names(monkeypatch):
    """Trials trained without op determinism are another study; the committed studies keep their names."""
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # the committed run's backend
    params = config.load(ROOT / "params.yaml")
    for architecture in params.tune.architectures:
        committed = json.loads((ROOT / "reports" / "tuning" / f"{architecture}.json").read_text())["study"]
        assert study_name(params, architecture, check_space(params, architecture, 10_000)) == committed
    loose = dataclasses.replace(params, base=dataclasses.replace(params.base, deterministic=False))
    defaults = check_space(loose, "lstm", 10_000)
    assert study_name(loose, "lstm", defaults) != study_name(params, "lstm", defaults)


def test_trials_on_another_keras_backend_are_another_study(monkeypatch):
    """The backends train different optimisers for the embedding: a TensorFlow trial must not join a JAX study."""
    params = config.load(ROOT / "params.yaml")
    defaults = check_space(params, "lstm", 10_000)
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    on_jax = study_name(params, "lstm", defaults)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert study_name(params, "lstm", defaults) != on_jax


def test_a_study_searches_architecture_choices_and_batch_size_and_its_best_model_loads(tiny: Path):
    """Bidirectional, pooling, masking (choices) and batch size (a range): each trial trains the model it
    sampled, the default experiment first, and the best trial's file is the model of its settings."""
    space = {"bidirectional": {"choices": [False, True]}, "pooling": {"choices": ["last", "max", "mean"]},
             "masking": {"choices": [False, True]}, "batch_size": {"low": 8, "high": 32, "log": True}}
    set_params(tiny, **{"tune.space": space, "tune.n_trials": 3, "tune.pruner": "none"})
    run(["python", "-m", "pipeline.tune", "--architecture", "lstm"], tiny)
    params = config.load(tiny / "params.yaml")
    name = study_name(params, "lstm", check_space(params, "lstm", 10_000))
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{tiny / 'optuna.db'}")
    trials = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(trials) == 3 and set(trials[0].params) == set(space)
    assert trials[0].params == {"bidirectional": False, "pooling": "last", "masking": False, "batch_size": 128}
    assert isinstance(study.trials[0].distributions["pooling"], optuna.distributions.CategoricalDistribution)
    best = json.loads((tiny / "reports/tuning/lstm.json").read_text())["best_params"]
    from pipeline.models import load

    model = load(tiny / "models/lstm-tuned.keras")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert ("Bidirectional" in kinds) == best["bidirectional"]
    assert {"max": "GlobalMaxPooling1D", "mean": "GlobalAveragePooling1D"}.get(best["pooling"], "LSTM") in kinds
    assert model.layers[0].mask_zero == best["masking"]


def test_tune_startup_trials_is_where_tpe_starts_modelling_the_results(tmp_path: Path):
    """The study loop's sampler takes tune.startup_trials: the same seeds give the same random start, then TPE
    samples near the best so far, where a sampler still at random keeps drawing anywhere."""
    import math

    from pipeline.locks import StoreLock
    from pipeline.workers import run_trials

    def search(startup: int) -> list[float]:
        url = f"sqlite:///{tmp_path / f'startup{startup}.db'}"
        study = optuna.create_study(study_name="s", storage=url, direction="maximize")
        slots = StoreLock(url, "s")

        def objective(trial: optuna.Trial) -> float:
            return -((trial.suggest_float("x", 0, 1) - 0.8) ** 2)

        run_trials(study, url, slots, objective, 20, math.inf, seed="startup", startup_trials=startup)
        return [t.params["x"] for t in study.trials]

    tpe, random = search(3), search(1000)
    assert tpe[:3] == random[:3] and tpe[3] != random[3]
    distance = {name: sum(abs(x - 0.8) for x in xs[10:]) / 10 for name, xs in (("tpe", tpe), ("random", random))}
    assert distance["tpe"] < distance["random"], distance


def test_what_pruning_saved_does_not_count_what_early_stopping_saved():
    """A complete trial that train.patience stopped after 4 of its 6 epochs saved 2 epochs by early stopping,
    not by pruning; a trial pruned after 2 of its 5 epochs saved (at most) 3 by pruning."""
    from pipeline.study_summary import summarize

    study = optuna.create_study(direction="maximize")
    epochs = optuna.distributions.IntDistribution(2, 10)
    study.add_trial(optuna.trial.create_trial(params={"epochs": 6}, distributions={"epochs": epochs}, value=0.8,
                                              user_attrs={"epochs_trained": 4}))
    study.add_trial(optuna.trial.create_trial(params={"epochs": 5}, distributions={"epochs": epochs},
                                              state=optuna.trial.TrialState.PRUNED, intermediate_values={2: 0.5},
                                              user_attrs={"epochs_trained": 2}))
    summary, _ = summarize(study, 2)
    assert (summary["epochs_trained"], summary["epochs_unpruned"], summary["epochs_saved_by_patience"]) == (6, 9, 2)
