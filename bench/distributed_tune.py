"""Benchmark: one tune worker against two on one study, through the scale-out recipe.

Starts PostgreSQL (the Debian package) and an `mlflow server` backed by it on 127.0.0.1,
prepares a slice of the IMDb archive in a scratch copy of the project, then runs the same
short LSTM study twice, each in fresh databases: once with one worker (the stage itself),
once with two (the stage plus a `--trials-only` worker). Prints trials per minute for each
(wall clock from the first worker's start to the last one's exit, start-up included) and
the ratio, then stops everything. Both runs happen in this one invocation, so they share the
machine's state.

    IMDB_ARCHIVE=/path/to/aclImdb_v1.tar.gz .venv/bin/python bench/distributed_tune.py [n_trials]   # default 8
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
import yaml  # noqa: E402

from tests import services  # noqa: E402
from tests.conftest import command_env, free_port, make_project  # noqa: E402

SETTINGS = {  # a short study: 500 reviews per split and class, 2-4 epochs of a small LSTM, no pruning
    "prepare": {"limit": 500},
    "train.experiments.lstm": {"maxlen": 120, "units": 16, "epochs": 2},
    "tune": {"n_trials": 8, "timeout": 0, "pruner": "none",
             "space": {"maxlen": {"low": 60, "high": 200, "log": False},
                       "units": {"low": 8, "high": 32, "log": False},
                       "epochs": {"low": 2, "high": 4, "log": False}}},
}


def configure(project: Path, n_trials: int) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    for path, values in SETTINGS.items():
        node = params
        for key in path.split("."):
            node = node[key]
        node.update(values)
    params["tune"]["n_trials"] = n_trials
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_workers(project: Path, count: int, stores: dict) -> float:
    """Start ``count`` workers on one study; return the wall seconds until the last one exits."""
    env = command_env(**stores)
    started = time.perf_counter()
    workers = [subprocess.Popen([sys.executable, "-m", "pipeline.tune", "--architecture", "lstm"]
                                + (["--trials-only"] if i else []), cwd=project, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for i in range(count)]
    for number, worker in enumerate(workers):
        output = worker.communicate()[0]
        if worker.returncode:
            sys.exit(f"worker {number} exited {worker.returncode}:\n{output[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    n_trials = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    archive = os.environ.get("IMDB_ARCHIVE")
    if not archive or not Path(archive).is_file():
        sys.exit("set IMDB_ARCHIVE=/path/to/aclImdb_v1.tar.gz")
    if not services.installed():
        sys.exit("PostgreSQL server not installed (Debian: apt-get install postgresql)")
    scratch = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    try:
        project = make_project(scratch)
        configure(project, n_trials)
        env = command_env(IMDB_ARCHIVE=archive)
        subprocess.run(["dvc", "repro", "prepare"], cwd=project, env=env, check=True, capture_output=True)
        server = services.server(free_port())
        base = next(server)
        try:
            rows = []
            for count in (1, 2):
                backend = services.create_database(base, f"mlflow_{count}")
                with services.mlflow_server(backend, scratch / f"artifacts-{count}", free_port(),
                                            log=scratch / f"mlflow-{count}.log") as tracking:
                    storage = services.create_database(base, f"optuna_{count}")
                    print(f"{count} worker(s), {n_trials} trials ...", flush=True)
                    seconds = run_workers(project, count, {"OPTUNA_STORAGE": storage,
                                                           "MLFLOW_TRACKING_URI": tracking})
                    summaries = optuna.get_all_study_summaries(storage)
                    trials = summaries[0].n_trials
                    done = optuna.load_study(study_name=summaries[0].study_name, storage=storage).trials
                    busy = sum(t.duration.total_seconds() for t in done if t.duration)
                    rows.append((count, trials, seconds, busy))
        finally:
            server.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nmachine: {os.cpu_count()} cores; study: LSTM, {n_trials} trials, 500 reviews per split and class")
    print(f"{'workers':>7}  {'trials':>6}  {'wall s':>7}  {'trial s (sum)':>13}  {'trials/min':>10}")
    for count, trials, seconds, busy in rows:
        print(f"{count:>7}  {trials:>6}  {seconds:>7.1f}  {busy:>13.1f}  {60 * trials / seconds:>10.2f}")
    one, two = (60 * t / s for _, t, s, _ in rows)
    print(f"ratio (2 workers / 1 worker): {two / one:.2f}")


if __name__ == "__main__":
    main()
