"""Benchmark: seconds per epoch of the train stage's code path vs. the tutorial's plain script.

Same prepared arrays, same models, same machine, in one process, in ABBA order
(plain, ours, ours, plain) per experiment so drift cancels. "Ours" is
pipeline.training.fit with its MLflow callback logging into a real SQLite
store; "plain" is bench/tutorial.py. Each run trains EPOCHS epochs; the first
epoch (graph tracing) is left out. Goal from the issue: ratio <= 1.0.

    .venv/bin/python bench/train.py        # after ./lab.sh pipeline has prepared data/prepared
"""

import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pipeline  # noqa: E402,F401  (picks the Keras backend the pipeline uses: pipeline/__init__.py)

# isort: split
import keras  # noqa: E402
import mlflow  # noqa: E402

from bench.tutorial import tutorial_fit  # noqa: E402
from pipeline import config  # noqa: E402
from pipeline.data import load_split, pad  # noqa: E402
from pipeline.models import build  # noqa: E402
from pipeline.training import fit, seed_everything  # noqa: E402

EPOCHS = 3


def ours(experiment, train, val, train_params):
    model = build(experiment.architecture, optimizer="rmsprop", learning_rate=1e-3, num_words=10000,
                  maxlen=experiment.maxlen, embedding_dim=32, units=32)
    with mlflow.start_run():
        rows = fit(model, train, val, maxlen=experiment.maxlen, epochs=EPOCHS, batch_size=128, padding="pre",
                   truncating="pre", bucketing=False, seed=0)
    return [r["epoch/seconds"] for r in rows]


def plain(experiment, train, val):
    x_train, x_val = pad(train, experiment.maxlen), pad(val, experiment.maxlen)
    _, seconds = tutorial_fit(experiment.architecture, experiment.maxlen, x_train, train.labels, x_val, val.labels,
                              EPOCHS)
    return seconds


def main():
    params = config.load()
    train, val = load_split("train"), load_split("val")
    names = sys.argv[1:] or list(params.train.experiments)
    with tempfile.TemporaryDirectory() as store:
        mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
        mlflow.set_experiment("bench")
        rows = []
        for name in names:
            experiment = params.train.experiments[name]
            times = {"plain": [], "ours": []}
            for side in ("plain", "ours", "ours", "plain"):
                seed_everything(0, deterministic=False)
                keras.backend.clear_session()
                seconds = plain(experiment, train, val) if side == "plain" else ours(experiment, train, val, None)
                times[side] += seconds[1:]
                print(f"  {name:16} {side:5} epochs: {', '.join(f'{s:.1f}' for s in seconds)} s", flush=True)
            plain_s, ours_s = statistics.median(times["plain"]), statistics.median(times["ours"])
            rows.append((name, plain_s, ours_s, ours_s / plain_s))
    print(f"\nseconds per epoch, median of {2 * (EPOCHS - 1)} steady epochs each side; {os.cpu_count()} cores")
    print(f"{'experiment':16} {'plain':>8} {'ours':>8} {'ratio':>7}")
    for name, plain_s, ours_s, ratio in rows:
        print(f"{name:16} {plain_s:8.2f} {ours_s:8.2f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
