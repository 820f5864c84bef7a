"""Benchmark: compute saved by pruning, and what it costs in best validation accuracy.

Runs the tune stage's own study code (pipeline.studies.run_study) twice on the full
prepared data, in a scratch folder with throwaway Optuna (in-memory) and MLflow
stores: once with params' pruner, once with no pruner, same seed, same trial
count, same search space. Reports epochs trained / epochs the same trials would
have run unpruned, and both best validation accuracies. Goal from the issue:
ratio <= 0.5 with the best value within 0.5 point of the unpruned study.

    .venv/bin/python bench/pruning.py [architecture] [n_trials]   # default dense 16
"""

import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mlflow  # noqa: E402
import optuna  # noqa: E402

from pipeline import config, studies  # noqa: E402
from pipeline.tune import check_space  # noqa: E402


def main():
    architecture = sys.argv[1] if len(sys.argv) > 1 else "dense"
    n_trials = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    base = config.load(ROOT / "params.yaml")
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        Path("data").symlink_to(ROOT / "data")  # the prepared store, read-only here
        mlflow.set_tracking_uri(f"sqlite:///{scratch}/mlflow.db")
        mlflow.set_experiment("bench-pruning")
        defaults = check_space(base, architecture, 10**6)
        for pruner in (base.tune.pruner, "none"):
            tune = dataclasses.replace(base.tune, pruner=pruner, n_trials=n_trials, timeout=0)
            params = dataclasses.replace(base, tune=tune)
            started = time.perf_counter()
            summary, _, _ = studies.run_study(params, architecture, defaults, optuna.storages.InMemoryStorage(),
                                           f"bench-{pruner}", storage_label="memory", model_dir=Path("models-tmp"))
            results[pruner] = summary | {"seconds": time.perf_counter() - started}
            print(f"{pruner}: best {summary['best_value']:.4f}, epochs {summary['epochs_trained']} of "
                  f"{summary['epochs_unpruned']}, {summary['trials']}", flush=True)
    pruned, unpruned = results[base.tune.pruner], results["none"]
    print(f"\n{architecture}, {n_trials} trials, seed {base.base.seed}, {os.cpu_count()} cores")
    print(f"{'pruner':10} {'best val acc':>13} {'epochs':>8} {'of unpruned':>12} {'ratio':>6} {'wall s':>7}")
    for name, r in ((base.tune.pruner, pruned), ("none", unpruned)):
        print(f"{name:10} {r['best_value']:13.4f} {r['epochs_trained']:8} {r['epochs_unpruned']:12} "
              f"{r['epoch_ratio']:6.2f} {r['seconds']:7.0f}")
    print(f"best value difference: {100 * (pruned['best_value'] - unpruned['best_value']):+.2f} points")


if __name__ == "__main__":
    main()
