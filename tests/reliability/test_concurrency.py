"""Two tune workers on one study, with a journal file and with a real PostgreSQL server: exactly
tune.n_trials finished trials, none duplicated or lost, one MLflow run per trial, and an
optuna-dashboard reading the study all along. With PostgreSQL, the password of the storage URLs
never reaches MLflow, the logs or the reports."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import optuna
import pytest

from pipeline import config
from pipeline.tune import check_space, study_name
from tests import services as postgres
from tests.conftest import SMALL_ARCHIVE, command_env, free_port, run, set_params

N_TRIALS = 6
SPACE = {"maxlen": {"low": 20, "high": 60, "log": False}, "units": {"low": 4, "high": 8, "log": False},
         "epochs": {"low": 6, "high": 9, "log": False}}


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    yield from postgres.server(free_port())


@pytest.fixture
def stores(request, tmp_path: Path) -> dict[str, str]:
    """OPTUNA_STORAGE (and MLFLOW_TRACKING_URI, with PostgreSQL) for the two workers."""
    if request.param == "journal":
        return {"OPTUNA_STORAGE": f"journal:{tmp_path / 'study.log'}"}
    base = request.getfixturevalue("pg_server")
    suffix = tmp_path.name.replace("-", "_").lower()
    return {"OPTUNA_STORAGE": postgres.create_database(base, f"optuna_{suffix}"),
            "MLFLOW_TRACKING_URI": postgres.create_database(base, f"mlflow_{suffix}")}


def dashboard_url(stores: dict[str, str]) -> str:
    return stores["OPTUNA_STORAGE"].removeprefix("journal:")  # the dashboard takes a journal file's path


@pytest.mark.parametrize("stores", ["journal", "postgresql"], indirect=True)
def test_two_workers_share_one_study_exactly(project: Path, stores: dict[str, str]):
    set_params(project, **{
        "prepare.limit": 20, "prepare.num_words": 300,
        "train.experiments.lstm.epochs": 6, "train.experiments.lstm.maxlen": 40, "train.experiments.lstm.units": 4,
        "tune.n_trials": N_TRIALS, "tune.timeout": 0, "tune.pruner": "none", "tune.space": SPACE,
    })
    run(["dvc", "repro", "prepare"], project, IMDB_ARCHIVE=str(SMALL_ARCHIVE))
    params = config.load(project / "params.yaml")
    name = study_name(params, "lstm", check_space(params, "lstm", 10_000))
    optuna.create_study(study_name=name, storage=_storage(stores), direction="maximize")  # the dashboard needs it

    port = free_port()
    dashboard = subprocess.Popen(["optuna-dashboard", dashboard_url(stores), "--port", str(port)], cwd=project,
                                 env=command_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers = [subprocess.Popen(["python", "-m", "pipeline.tune", "--architecture", "lstm"], cwd=project,
                                env=command_env(**stores), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    answers: list[int] = []
    try:
        while any(w.poll() is None for w in workers):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    answers.append(response.status)
                    listed = json.load(response)["study_summaries"]
                    assert name in [s["study_name"] for s in listed]
            except OSError:
                answers.append(0)  # not up yet, or refused: counted, judged below
            time.sleep(0.5)
        outputs = [w.communicate()[0] for w in workers]
    finally:
        for process in (*workers, dashboard):
            process.kill()
            process.wait()
    assert [w.returncode for w in workers] == [0, 0], "\n\n".join(outputs)
    # The dashboard answered all along once up: no failure while the study was written.
    first = answers.index(200)
    assert answers[first:].count(200) == len(answers) - first >= 5, answers

    study = optuna.load_study(study_name=name, storage=_storage(stores))
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == N_TRIALS and [t.number for t in trials] == list(range(N_TRIALS))
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    assert len({t.user_attrs["owner"] for t in trials}) == 2  # both workers ran trials
    assert sum(bool(t.user_attrs.get("default")) for t in trials) == 1
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == N_TRIALS  # no point drawn twice

    client = mlflow.MlflowClient(stores.get("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}"))
    experiment = client.get_experiment_by_name("imdb-sentiment")
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    parents = [r for r in runs if r.data.tags.get("optuna.study") == name and r not in children]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.info.run_id for r in children) == sorted(t.user_attrs["mlflow_run_id"] for t in trials)
    assert {r.info.status for r in children} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}

    summary = json.loads((project / "reports/tuning/lstm.json").read_text())
    assert summary["trials"] == {"complete": N_TRIALS, "pruned": 0, "failed": 0, "cut": 0}
    assert (project / "models/lstm-tuned.keras").is_file()
    if "MLFLOW_TRACKING_URI" in stores:
        _assert_password_never_written(project, outputs, runs, parents[0])


def _storage(stores: dict[str, str]):
    url = stores["OPTUNA_STORAGE"]
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    return url


def _assert_password_never_written(project: Path, outputs: list[str], runs, parent) -> None:
    secret = postgres.PASSWORD
    assert parent.data.params["storage"].startswith("postgresql://lab:***@127.0.0.1:")
    assert "lab:***@127.0.0.1" in outputs[0] and all(secret not in output for output in outputs)
    for found in runs:
        assert secret not in json.dumps([found.data.params, found.data.tags])
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert secret.encode() not in path.read_bytes(), path


def _claim_slots(url: str, name: str, ready) -> None:
    """One worker of test_trial_slots_are_handed_out_exactly_once: the tune stage's loop, a trivial objective."""
    import math

    from pipeline.locks import StoreLock
    from pipeline.tracking import owner
    from pipeline.workers import run_trials

    storage = _storage({"OPTUNA_STORAGE": url})
    study = optuna.load_study(study_name=name, storage=storage)
    slots = StoreLock(url, name)
    ready.wait(timeout=300)  # all four start racing together, whatever their import times

    def objective(trial: optuna.Trial) -> float:
        slots.release()
        trial.set_user_attr("owner", owner())
        time.sleep(0.1)  # long enough that the last slots are claimed while others still run
        return trial.suggest_float("x", 0, 1)

    run_trials(study, storage, slots, objective, 40, math.inf, seed="slots")


def test_trial_slots_are_handed_out_exactly_once(tmp_path: Path):
    """Four workers race for 40 short trials through the tune stage's own loop: exactly 40 trials,
    all complete, and every worker got some."""
    import multiprocessing

    url = f"journal:{tmp_path / 'slots.log'}"
    optuna.create_study(study_name="slots", storage=_storage({"OPTUNA_STORAGE": url}), direction="maximize")
    context = multiprocessing.get_context("spawn")  # no fork of a process that has TensorFlow loaded
    ready = context.Barrier(4)
    workers = [context.Process(target=_claim_slots, args=(url, "slots", ready)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    trials = optuna.load_study(study_name="slots", storage=_storage({"OPTUNA_STORAGE": url})).trials
    assert len(trials) == 40 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["owner"] for t in trials}) == 4


def test_a_dead_owner_is_recognised_only_in_its_own_process_table():
    """Runs and trials of a dead process are closed by the next process that can see its process table,
    never by a container that merely shares the host name (its pids are another table's)."""
    import socket

    from pipeline.tracking import _process_table, owner, owner_is_dead

    child = subprocess.Popen(["true"])
    child.wait()
    host, here = socket.gethostname(), _process_table()
    assert here != "?" and owner().endswith(f":{here}")
    assert not owner_is_dead(owner())  # this process, alive
    assert owner_is_dead(f"{host}:{child.pid}:12345:{here}")  # gone, same table
    assert not owner_is_dead(f"{host}:{child.pid}:12345:other-boot-id/4026531836")  # same host name, other table
    assert owner_is_dead(f"{host}:{child.pid}:12345")  # a tag written before the table was recorded
    assert not owner_is_dead(f"other-host:{child.pid}:12345")


def test_a_worker_that_loses_the_race_to_tag_the_experiment_goes_on(tmp_path: Path, monkeypatch):
    """Two workers starting together on one tracking server both find the experiment untagged; the
    server's upsert inserts one tag and refuses the other with a unique-key violation (CI saw this with
    PostgreSQL). The loser goes on, since the tag it wanted is there; a refusal that left the tag unset
    still stops the stage with the store named."""
    from pipeline import tracking
    from pipeline.stage import UserError

    real = mlflow.set_experiment_tag

    def lose_the_race(key: str, value: str) -> None:
        real(key, value)  # the other worker's insert lands first ...
        raise mlflow.exceptions.MlflowException("(psycopg.errors.UniqueViolation) duplicate key value violates "
                                                'unique constraint "experiment_tag_pk"')  # ... and ours is refused

    monkeypatch.setattr(mlflow, "set_experiment_tag", lose_the_race)
    tracking.start(tmp_path, None)
    assert mlflow.get_experiment_by_name(tracking.EXPERIMENT).tags[tracking.KIND_TAG] == tracking.KIND

    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setattr(mlflow, "set_experiment_tag", lambda key, value: lose_the_race("unrelated", value))
    with pytest.raises(UserError, match="unusable .*UniqueViolation"):
        tracking.start(other, None)


def test_a_run_that_loses_the_race_to_log_a_new_dataset_still_names_it(tmp_path: Path, monkeypatch):
    """Two workers' first runs log the same new dataset at the same moment: the store inserts it for
    one and refuses the other (a dataset_pk violation). The loser's second try links its run to the
    dataset the winner created; both runs then name it."""
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    from pipeline import tracking

    tracking.start(tmp_path, None)
    inputs = {"datasets": [MetaDataset(HTTPDatasetSource("http://127.0.0.1/train"), name="imdb-train",
                                       digest="0123456789")], "contexts": ["training"], "tags_list": [{}]}
    client, real, calls = mlflow.MlflowClient(), mlflow.log_inputs, []
    winner = client.create_run(mlflow.get_experiment_by_name(tracking.EXPERIMENT).experiment_id).info.run_id

    def lose_the_race_once(**kwargs) -> None:
        calls.append(kwargs)
        if len(calls) == 1:  # the winner's insert lands first; ours is refused
            client.log_inputs(winner, [mlflow.entities.DatasetInput(kwargs["datasets"][0]._to_mlflow_entity())])
            raise mlflow.exceptions.MlflowException('(sqlite3.IntegrityError) UNIQUE constraint failed: '
                                                    'datasets.experiment_id, datasets.name, datasets.digest')
        real(**kwargs)

    monkeypatch.setattr(mlflow, "log_inputs", lose_the_race_once)
    with mlflow.start_run() as loser:
        tracking.log_inputs(**inputs)
    assert len(calls) == 2
    for run_id in (winner, loser.info.run_id):
        assert [d.dataset.name for d in client.get_run(run_id).inputs.dataset_inputs] == ["imdb-train"]


def test_an_interrupted_run_ends_killed_even_when_the_store_is_briefly_locked(tmp_path, monkeypatch):
    """Interrupted workers end their runs at once; SQLite lets one write at a time ("database is locked").

    The store refuses the first status write, inside the real ``mlflow.end_run``, which has already taken
    the run off the stack by then: a retry through ``end_run`` ended the parent instead and left this run
    RUNNING (CI: a study's parent run). A real lock would take MLflow's 20 s busy timeout to refuse."""
    from pipeline import tracking

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        # An earlier test in this worker may have left another store's experiment active: name our own.
        parent = mlflow.start_run(experiment_id=mlflow.create_experiment("locked"), log_system_metrics=False)
        child = mlflow.start_run(nested=True, log_system_metrics=False)
        real, refused = mlflow.MlflowClient.set_terminated, []

        def locked_once(self, run_id, status=None, end_time=None):
            if not refused:
                refused.append(run_id)
                raise mlflow.exceptions.MlflowException("(sqlite3.OperationalError) database is locked")
            real(self, run_id, status, end_time)

        monkeypatch.setattr(mlflow.MlflowClient, "set_terminated", locked_once)
        monkeypatch.setattr(tracking.time, "sleep", lambda seconds: None)
        tracking.end_killed()
        client = mlflow.MlflowClient()
        assert refused == [child.info.run_id] and client.get_run(child.info.run_id).info.status == "KILLED"
        assert mlflow.active_run().info.run_id == parent.info.run_id
        assert client.get_run(parent.info.run_id).info.status == "RUNNING"
        tracking.end_killed()
        assert mlflow.active_run() is None and client.get_run(parent.info.run_id).info.status == "KILLED"
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
