"""Benchmark: length-bucketed batches (train.bucketing) over the replicate seeds, on the train stage's code.

For each seed (base.seeds unless --seeds), one default experiment (lstm_maxlen500 unless named) is
trained as its train stage trains it (``training.build_model`` and ``fit_model`` with params.yaml:
determinism, the best validation epoch kept), unbucketed and bucketed, alternating in one process
(the machine drifts), and the kept model is scored on the test split as evaluate scores it
(``evaluate.predict``: the bucketed model reads each review at its own width, as in its validation;
no maxlen padding it never saw). This benchmarks the batching, it selects nothing. Prints per seed
the steady seconds per epoch (median, first epoch left out) and the val and test accuracy, then each
side's mean ± sd over seeds and the time ratio.

With determinism on, the unbucketed side repeats the train stage's replicate of the same seed number
for number; ``--only bucketed`` skips it (compare with the run's own replicates instead).

    .venv/bin/python bench/bucketing.py [experiment] [--seeds 1 2 3] [--only bucketed|unbucketed]
"""

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pipeline  # noqa: E402,F401  (picks the Keras backend the pipeline uses: pipeline/__init__.py)

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402

from pipeline import config, evaluate  # noqa: E402
from pipeline.data import load_split, pad  # noqa: E402
from pipeline.training import build_model, fit_model, seed_everything  # noqa: E402


def one(params, name: str, seed: int, bucketing: bool, splits) -> dict:
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, bucketing=bucketing))
    experiment = params.train.experiments[name]
    settings = config.experiment_settings(experiment) | {"learning_rate": params.train.learning_rate}
    train, val, test = splits
    keras.backend.clear_session()
    seed_everything(seed, params.base.deterministic)
    model = build_model(params, experiment.architecture, settings)
    rows = fit_model(params, experiment.architecture, model, settings, train, val, seed)
    x = pad(test, experiment.maxlen, params.train.padding, params.train.truncating)
    probabilities, _ = evaluate.predict(model, x, test.lengths, params.train.padding, params.train.batch_size)
    return {"seconds": statistics.median(r["epoch/seconds"] for r in rows[1:]),
            "val": max(r["val/accuracy"] for r in rows),
            "test": float(np.mean((probabilities >= 0.5) == test.labels.astype(bool)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", nargs="?", default="lstm_maxlen500")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--only", choices=("bucketed", "unbucketed"))
    args = parser.parse_args()
    params = config.load()
    seeds = args.seeds or list(params.base.seeds)
    sides = [side for side in ("unbucketed", "bucketed") if args.only in (None, side)]
    splits = tuple(load_split(s).capped(params.prepare.num_words) for s in ("train", "val", "test"))
    results: dict[str, list[dict]] = {side: [] for side in sides}
    for seed in seeds:
        for side in sides:
            result = one(params, args.experiment, seed, side == "bucketed", splits)
            results[side].append(result)
            print(f"seed {seed} {side}: {result['seconds']:.2f} s/epoch, best val accuracy {result['val']:.4f}, "
                  f"test accuracy {result['test']:.4f}", flush=True)
    print(f"\n{args.experiment}, seeds {seeds}, backend {keras.backend.backend()}, determinism "
          f"{params.base.deterministic}\n| side | s/epoch | val accuracy | test accuracy |\n|---|---|---|---|")

    def spread(side: str, key: str, digits: int) -> str:
        values = [r[key] for r in results[side]]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"

    for side in sides:
        print(f"| {side} | {spread(side, 'seconds', 2)} | {spread(side, 'val', 4)} | {spread(side, 'test', 4)} |")
    if len(sides) == 2:
        ratio = statistics.mean(r["seconds"] for r in results["bucketed"]) / statistics.mean(
            r["seconds"] for r in results["unbucketed"])
        print(f"bucketed / unbucketed seconds per epoch: {ratio:.2f}")


if __name__ == "__main__":
    main()
