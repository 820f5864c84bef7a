"""Benchmark: does memory stay flat over a long study? (Keras session cleared per trial.)

Runs the tune stage's study code for N_TRIALS short trials (dense, 1 epoch, maxlen
50-300, full prepared data, no pruner, in-memory Optuna storage, throwaway MLflow
store) and prints the process's resident memory after trials 1, 5, 10, 25 and N.

    .venv/bin/python bench/tune_memory.py [n_trials]     # default 50
"""

import dataclasses
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mlflow  # noqa: E402
import optuna  # noqa: E402

from pipeline import config, studies  # noqa: E402
from pipeline.config import SpaceParams  # noqa: E402
from pipeline.tune import check_space  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main():
    n_trials = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    base = config.load(ROOT / "params.yaml")
    samples = []
    fit = studies.fit

    def measured_fit(*args, **kwargs):  # the study's own fit, with a reading after each trial
        rows = fit(*args, **kwargs)
        samples.append(rss_mib())
        if len(samples) in (1, 5, 10, 25, n_trials):
            print(f"after trial {len(samples):3}: {samples[-1]:7.0f} MiB resident", flush=True)
        return rows

    studies.fit = measured_fit
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        Path("data").symlink_to(ROOT / "data")
        mlflow.set_tracking_uri(f"sqlite:///{scratch}/mlflow.db")
        mlflow.set_experiment("bench-memory")
        space = {"maxlen": SpaceParams(50, 300, False), "epochs": SpaceParams(1, 1, False)}
        tune = dataclasses.replace(base.tune, pruner="none", n_trials=n_trials, timeout=0, space=space)
        params = dataclasses.replace(base, tune=tune)
        defaults = check_space(base, "dense", 10**6) | {"epochs": 1}
        studies.run_study(params, "dense", defaults, optuna.storages.InMemoryStorage(), "bench-memory",
                          storage_label="memory", model_dir=Path("models-tmp"))
    growth = samples[-1] - samples[4]
    print(f"\n{n_trials} trials: {samples[4]:.0f} MiB after trial 5, {samples[-1]:.0f} MiB after trial {n_trials} "
          f"({growth:+.0f} MiB, {growth / (n_trials - 5):+.1f} MiB per trial)")


if __name__ == "__main__":
    main()
