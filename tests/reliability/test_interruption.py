"""Interrupting a stage (Ctrl-C, SIGTERM, kill -9) during download, prepare, a training epoch or a
tuning trial: every DVC output is absent or complete, the MLflow runs of the interrupted process end
KILLED (at once, or when the next stage starts after a kill -9), a study keeps its completed trials,
and the next `dvc repro` completes."""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml

from tests.conftest import SHARED_ARCHIVE, SMALL_ARCHIVE, command_env, run, set_params
from tests.reliability.test_bad_params import tree_digest

SIGNALS = {"SIGINT": (signal.SIGINT, 130), "SIGTERM": (signal.SIGTERM, 143), "SIGKILL": (signal.SIGKILL, -9)}


def start(project: Path, args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=project, env=command_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)


def wait_for(worker: subprocess.Popen, marker: str) -> str:
    """Read the worker's output until ``marker`` appears; fail if it ends first."""
    seen = ""
    for line in worker.stdout:
        seen += line
        if marker in line:
            return seen
    pytest.fail(f"the worker ended before {marker!r}:\n{seen}")


def interrupt(worker: subprocess.Popen, name: str) -> str:
    sent, code = SIGNALS[name]
    worker.send_signal(sent)
    rest = worker.communicate(timeout=120)[0]
    assert worker.returncode == code, rest
    if name != "SIGKILL":
        assert rest.strip().splitlines()[-1] == (f"error: interrupted ({name}); outputs were left as they were "
                                                 "before this run"), rest
        assert "Traceback" not in rest
    return rest


def mlflow_runs(project: Path) -> dict[str, list]:
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("imdb-sentiment")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    return {status: [r for r in runs if r.info.status == status]
            for status in ("RUNNING", "KILLED", "FINISHED", "FAILED")}


class SlowArchive(BaseHTTPRequestHandler):
    """Serves the small archive at 20 KB/s (about 4 s), honouring Range requests."""

    payload = SMALL_ARCHIVE.read_bytes()
    ranges: list[str | None] = []

    def do_GET(self):  # noqa: N802 (the http.server API)
        type(self).ranges.append(self.headers.get("Range"))
        start = int((self.headers.get("Range") or "bytes=0-").removeprefix("bytes=").rstrip("-"))
        body = self.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        self.end_headers()
        try:
            for offset in range(0, len(body), 1024):
                self.wfile.write(body[offset:offset + 1024])
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass  # the client went away

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("name", ["SIGINT", "SIGKILL"])
def test_download_interrupted_resumes_and_never_leaves_a_partial_archive(project: Path, name: str):
    SlowArchive.ranges = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SlowArchive)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        set_params(project, **{"download.url": f"http://127.0.0.1:{httpd.server_address[1]}/aclImdb_v1.tar.gz",
                               "download.sha256": hashlib.sha256(SlowArchive.payload).hexdigest()})
        worker = start(project, ["python", "-m", "pipeline.download"])
        wait_for(worker, "downloading")
        time.sleep(1.5)  # about a third received
        interrupt(worker, name)
        target = project / "data/raw/aclImdb_v1.tar.gz"
        assert not target.exists()  # the DVC output appears only once complete and verified
        kept = target.with_name(target.name + ".part").stat().st_size
        assert 0 < kept < len(SlowArchive.payload)
        run(["dvc", "repro", "download"], project)
        assert target.read_bytes() == SlowArchive.payload
        assert SlowArchive.ranges[-1] == f"bytes={kept}-"  # resumed where the interrupted run stopped
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def small(project: Path) -> Path:
    set_params(project, **{"prepare.limit": 20, "prepare.num_words": 300})
    run(["dvc", "repro", "prepare"], project, IMDB_ARCHIVE=str(SMALL_ARCHIVE))
    return project


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_training_interrupted_mid_epoch_leaves_no_output_and_no_running_run(small: Path, name: str):
    # train.patience 0: no early stop may end the 400 epochs before the signal.
    set_params(small, **{"train.experiments.dense.epochs": 400, "train.experiments.dense.maxlen": 60,
                         "train.patience": 0})
    outputs = [small / o for o in ("models/dense/seed1.keras", "metrics/train/dense/seed1.json",
                                        "plots/train/dense/seed1.csv")]
    before = [p.read_bytes() if p.exists() else None for p in outputs]  # the metrics of the committed run
    worker = start(small, ["python", "-m", "pipeline.train", "--experiment", "dense", "--seed", "1"])
    wait_for(worker, "Epoch 3/400")
    interrupt(worker, name)
    assert [p.read_bytes() if p.exists() else None for p in outputs] == before  # untouched: none half-written
    assert not list(small.glob("**/*.partial*"))
    runs = mlflow_runs(small)
    if name == "SIGKILL":
        assert len(runs["RUNNING"]) == 1 and not runs["KILLED"]  # nothing could run in the killed process
    else:
        assert not runs["RUNNING"] and len(runs["KILLED"]) == 1  # ended by the process itself

    set_params(small, **{"train.experiments.dense.epochs": 2})
    result = run(["dvc", "repro", "train@dense-1"], small)
    if name == "SIGKILL":
        assert "was left RUNNING by a process that died" in result.stdout
    runs = mlflow_runs(small)
    assert not runs["RUNNING"] and len(runs["KILLED"]) == 1 and len(runs["FINISHED"]) == 1
    assert (small / "models/dense/seed1.keras").is_file() and (small / "metrics/train/dense/seed1.json").is_file()


@pytest.mark.parametrize("name", ["SIGINT", "SIGKILL"])
def test_tuning_interrupted_mid_trial_keeps_finished_trials(small: Path, name: str):
    from pipeline import config
    from pipeline.tune import check_space, study_name

    set_params(small, **{
        "train.experiments.lstm.epochs": 1, "train.experiments.lstm.maxlen": 40, "train.experiments.lstm.units": 4,
        "tune.n_trials": 3, "tune.timeout": 0, "tune.pruner": "none", "train.patience": 0,
        "tune.space": {"maxlen": {"low": 20, "high": 60, "log": False},
                       "epochs": {"low": 30, "high": 40, "log": False}},
    })
    params = config.load(small / "params.yaml")
    study = study_name(params, "lstm", check_space(params, "lstm", 10_000))
    storage = f"sqlite:///{small / 'optuna.db'}"
    outputs = [small / o for o in ("models/lstm-tuned.keras", "reports/tuning/lstm.json",
                                   "reports/tuning/lstm-trials.csv")]
    before = [p.read_bytes() if p.exists() else None for p in outputs]  # the committed run's reports
    worker = start(small, ["python", "-m", "pipeline.tune", "--architecture", "lstm"])
    wait_for(worker, "Trial 0 finished")  # the default experiment: one epoch
    wait_for(worker, "Epoch 3/")  # trial 1 (30 to 40 epochs) is training
    interrupt(worker, name)
    trials = optuna.load_study(study_name=study, storage=storage).trials
    first = trials[0]
    assert first.state == optuna.trial.TrialState.COMPLETE  # kept
    assert trials[1].state == (optuna.trial.TrialState.RUNNING if name == "SIGKILL" else optuna.trial.TrialState.FAIL)
    assert [p.read_bytes() if p.exists() else None for p in outputs] == before

    run(["dvc", "repro", "tune@lstm"], small)
    trials = optuna.load_study(study_name=study, storage=storage).trials
    assert trials[0].value == first.value and trials[0].datetime_complete == first.datetime_complete
    assert trials[1].state == optuna.trial.TrialState.FAIL  # a killed worker's trial is failed on restart
    assert [t.state for t in trials[2:]] == [optuna.trial.TrialState.COMPLETE] * 2  # its slot was run again
    runs = mlflow_runs(small)
    assert not runs["RUNNING"] and not runs["FAILED"]
    assert [r.data.tags["optuna.trial"] for r in runs["KILLED"]] == ["1"]
    assert (small / "models/lstm-tuned.keras").is_file()


@pytest.mark.skipif(not SHARED_ARCHIVE.is_file(), reason="needs the labelled archive (IMDB_ARCHIVE)")
@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_prepare_interrupted_mid_way_leaves_nothing_half_written(project: Path, sent):
    run(["dvc", "repro", "download"], project, IMDB_ARCHIVE=str(SHARED_ARCHIVE))
    worker = subprocess.Popen(["python", "-m", "pipeline.prepare"], cwd=project, env=command_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Wait until it is tokenising (its progress bar is on stderr), well before it writes.
    seen = ""
    while "tokenising" not in seen:
        line = worker.stderr.readline()
        if not line:
            pytest.fail(f"prepare ended before it was interrupted:\n{seen}")
        seen += line
    time.sleep(1)
    worker.send_signal(sent)
    rest = worker.communicate(timeout=120)[1]
    if sent == signal.SIGINT:
        assert worker.returncode == 130
        assert "error: interrupted (SIGINT); outputs were left as they were before this run\n" in rest
        assert "Traceback" not in rest
    else:
        assert worker.returncode == -signal.SIGKILL
    assert not (project / "data/prepared").exists()  # never half-written: absent, as before the run
    run(["dvc", "repro", "prepare"], project, IMDB_ARCHIVE=str(SHARED_ARCHIVE))
    assert not (project / "data/prepared.partial").exists()
    first = tree_digest(project / "data/prepared")
    run(["dvc", "repro", "-f", "prepare"], project, IMDB_ARCHIVE=str(SHARED_ARCHIVE))
    assert tree_digest(project / "data/prepared") == first  # the same files as an uninterrupted rerun


# SIGTERM: the runner turns it into Ctrl-C for each stage (the path Ctrl-C takes too, minus the translation).
@pytest.mark.parametrize("name", ["SIGTERM"])
def test_interrupting_the_parallel_runner_stops_every_running_stage(project: Path, name: str):
    """pipeline.repro with two stages training side by side (tuning and training): a signal to the runner
    reaches both; their runs end KILLED, none FAILED, DVC records neither, and no process is left behind."""
    from tests.test_train import shrink

    # Far longer than the test: no stage may finish between the check and the signal. Not dense: on JAX its
    # 1000 epochs take 20 s here, and once ended within the 5 s in which run() raises a swallowed interrupt
    # again (the first had landed in JAX's GC callback, which ignores exceptions). train.patience 0: no early stop.
    shrink(project, epochs=1000)
    set_params(project, **{"tune.architectures": ["lstm"], "tune.n_trials": 1, "train.patience": 0})
    run(["git", "commit", "-qam", "long epochs"], project)
    before = yaml.safe_load((project / "dvc.lock").read_text())["stages"]  # the committed full run's
    worker = start(project, ["python", "-m", "pipeline.repro", "--jobs", "2"], IMDB_ARCHIVE=str(SMALL_ARCHIVE))
    seen = ""
    for line in worker.stdout:  # until two stages are both inside their epochs (the runner starts tune@lstm first)
        seen += line
        if len({row.split("|")[0].strip() for row in seen.splitlines()
                if row.startswith(("train@", "tune@")) and "| Epoch 3/" in row} - finished(seen)) == 2:
            break
    else:
        pytest.fail(f"two stages never trained side by side:\n{seen}")
    sent, code = SIGNALS[name]
    worker.send_signal(sent)
    try:
        rest = worker.communicate(timeout=180)[0]
    except subprocess.TimeoutExpired:  # a stage hangs while it unwinds: the second signal kills them all
        worker.send_signal(sent)
        pytest.fail(f"the runner did not exit within 180 s of {name}:\n{seen}{worker.communicate(timeout=60)[0]}")
    assert worker.returncode == code, rest
    assert rest.strip().splitlines()[-1].startswith(f"error: interrupted ({name}); the stages that were running")
    interrupted = started(seen + rest) - finished(seen + rest)
    assert len(interrupted) >= 2 and all(stage.startswith(("train@", "tune@")) for stage in interrupted), rest
    after = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert all(after.get(stage) == before.get(stage) for stage in interrupted)  # DVC recorded none of them
    runs = mlflow_runs(project)
    assert not runs["RUNNING"] and not runs["FAILED"] and len(runs["KILLED"]) >= 2, rest
    left = subprocess.run(["pgrep", "-f", "pipeline.(train|tune) .*"], capture_output=True, text=True).stdout
    assert not [pid for pid in left.split() if Path(f"/proc/{pid}/cwd").resolve() == project.resolve()]


def started(output: str) -> set[str]:
    return set(re.findall(r"^== (\S+): started", output, re.MULTILINE))


def finished(output: str) -> set[str]:
    return set(re.findall(r"^== (\S+): done", output, re.MULTILINE))
