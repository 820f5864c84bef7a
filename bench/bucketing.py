"""Benchmark: length-bucketed batches (train.bucketing) for lstm_maxlen500.

In one process: the tutorial's plain script (time per epoch), then our fit
unbucketed and bucketed, each the full EPOCHS epochs from the same seed, each
scored once on the test split (this is a benchmark of the batching, not model
selection). Goal from the issue: bucketed <= 0.7x the plain script's seconds
per epoch, with test accuracy within noise of the unbucketed run.

    .venv/bin/python bench/bucketing.py [experiment]    # default lstm_maxlen500
"""

import math
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pipeline  # noqa: E402,F401  (picks the Keras backend the pipeline uses: pipeline/__init__.py)

# isort: split
import keras  # noqa: E402

from bench.tutorial import tutorial_fit  # noqa: E402
from pipeline import config  # noqa: E402
from pipeline.data import load_split, pad  # noqa: E402
from pipeline.models import build  # noqa: E402
from pipeline.training import fit, seed_everything  # noqa: E402

PLAIN_EPOCHS = 3


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "lstm_maxlen500"
    experiment = config.load().train.experiments[name]
    train, val, test = (load_split(s) for s in ("train", "val", "test"))
    x_test, y_test = pad(test, experiment.maxlen), test.labels

    seed_everything(0, deterministic=False)
    _, plain_seconds = tutorial_fit(experiment.architecture, experiment.maxlen, pad(train, experiment.maxlen),
                                    train.labels, pad(val, experiment.maxlen), val.labels, PLAIN_EPOCHS)
    plain = statistics.median(plain_seconds[1:])
    print(f"plain tutorial script: {', '.join(f'{s:.1f}' for s in plain_seconds)} s per epoch", flush=True)

    results = {}
    for bucketing in (False, True):
        keras.backend.clear_session()
        seed_everything(0, deterministic=False)
        model = build(experiment.architecture, optimizer="rmsprop", learning_rate=1e-3, num_words=10000,
                      maxlen=None if bucketing else experiment.maxlen, embedding_dim=experiment.embedding_dim,
                      units=experiment.units)
        rows = fit(model, train, val, maxlen=experiment.maxlen, epochs=experiment.epochs, batch_size=128,
                   padding="pre", truncating="pre", bucketing=bucketing, seed=0)
        _, accuracy = model.evaluate(x_test, y_test, batch_size=512, verbose=0)
        seconds = statistics.median(r["epoch/seconds"] for r in rows[1:])
        results[bucketing] = (seconds, accuracy, rows[-1]["val/accuracy"])
        print(f"ours, bucketing={bucketing}: {seconds:.1f} s/epoch, test accuracy {accuracy:.4f}", flush=True)

    n = len(y_test)
    print(f"\n{name}, {experiment.epochs} epochs, seed 0, {os.cpu_count()} cores")
    print(f"{'run':24} {'s/epoch':>8} {'x plain':>8} {'val acc':>8} {'test acc':>9} {'95% CI':>16}")
    print(f"{'plain tutorial script':24} {plain:8.1f} {1:8.2f}")
    for bucketing, (seconds, accuracy, val_accuracy) in results.items():
        half = 1.96 * math.sqrt(accuracy * (1 - accuracy) / n)
        label = "ours, bucketed" if bucketing else "ours, unbucketed"
        print(f"{label:24} {seconds:8.1f} {seconds / plain:8.2f} {val_accuracy:8.4f} {accuracy:9.4f} "
              f"[{accuracy - half:.4f}, {accuracy + half:.4f}]")


if __name__ == "__main__":
    main()
