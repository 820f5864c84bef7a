"""The tutorial's exact code and protocol on this project's data, once per seed: the reference numbers.

What runs is what the tutorial prints (bench/tutorial.py with published=True): Sequential models
without an Input layer on Embedding(10000, 32), rmsprop, binary cross-entropy, metric "acc", batch 128,
10 epochs, Keras' default pre-padding and pre-truncation, `validation_split=0.2` inside fit, and the
last epoch's model scored on the 25,000 test reviews. The GRU keeps its published head, Dense(1) without
a sigmoid: a bug, kept because it is part of the reference; its accuracy is Keras' metric, the raw output
thresholded at 0.5. The 25,000 training reviews are the prepared train and val splits together, shuffled
once with NumPy's RandomState(113) as keras.datasets.imdb does, so fit validates on the last 20%.

Reads   data/prepared (run `dvc repro prepare` first); params.yaml base.seeds (missing: 1 2 3)
Writes  reports/tutorial-reference.json; a run of some models merges into it, keeping the others
Takes   about 30 minutes for 5 models x 3 seeds on the 2-core machine; prints a line per epoch

    .venv/bin/python bench/tutorial_reference.py
    .venv/bin/python bench/tutorial_reference.py --models lstm gru --seeds 1 2
    .venv/bin/python bench/tutorial_reference.py --limit 200 --epochs 2 --output /tmp/tutref.json  # smoke
"""

import argparse
import datetime
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pipeline  # noqa: E402,F401  (picks the Keras backend the pipeline uses: pipeline/__init__.py)

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from bench.tutorial import NUM_WORDS, EpochTimer, tutorial_model  # noqa: E402
from pipeline import provenance  # noqa: E402
from pipeline.data import load_split, pad  # noqa: E402
from pipeline.paths import PREPARED_DIR  # noqa: E402
from pipeline.stage import UserError, run  # noqa: E402

OUTPUT = Path("reports/tutorial-reference.json")
KERAS_IMDB_SEED = 113  # keras.datasets.imdb.load_data's default shuffling seed
# name: (architecture, maxlen, head: the layers after the recurrent layer, or after Flatten)
MODELS = {
    "dense": ("dense", 200, "Dense(1, sigmoid)"),
    "simplernn": ("simplernn", 200, "Dense(32, relu), Dense(1, sigmoid)"),
    "lstm": ("lstm", 200, "Dense(1, sigmoid)"),
    "gru": ("gru", 200, "Dense(1), no sigmoid (as published)"),
    "lstm_maxlen500": ("lstm", 500, "Dense(1, sigmoid)"),
}


class Progress(EpochTimer):
    def __init__(self, label):
        super().__init__()
        self.label = label

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        print(f"{self.label} epoch {epoch + 1}: acc {logs['acc']:.4f} val_acc {logs['val_acc']:.4f} "
              f"{self.seconds[-1]:.1f} s", flush=True)


def tutorial_arrays(maxlens, limit):
    """maxlen -> (x_train, y_train, x_test, y_test), ordered as keras.datasets.imdb orders them."""
    train, val, test = (load_split(split, ROOT / PREPARED_DIR).capped(NUM_WORDS) for split in ("train", "val", "test"))
    rng = np.random.RandomState(KERAS_IMDB_SEED)  # one generator, train then test, as in load_data
    train_order, test_order = rng.permutation(len(train) + len(val)), rng.permutation(len(test))
    if limit:
        train_order, test_order = train_order[:limit], test_order[:limit]
    y_train = np.concatenate([train.labels, val.labels]).astype(np.int32)[train_order]
    arrays = {}
    for maxlen in maxlens:
        x_train = np.concatenate([pad(train, maxlen), pad(val, maxlen)])[train_order]
        arrays[maxlen] = x_train, y_train, pad(test, maxlen)[test_order], test.labels.astype(np.int32)[test_order]
    return arrays


def run_once(name, seed, arrays, epochs):
    architecture, maxlen, _ = MODELS[name]
    x_train, y_train, x_test, y_test = arrays[maxlen]
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = tutorial_model(architecture, maxlen, published=True)
    progress = Progress(f"{name} seed {seed}")
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=128, validation_split=0.2,
                        callbacks=[progress], verbose=0)
    _, test_accuracy = model.evaluate(x_test, y_test, batch_size=128, verbose=0)
    val_accuracy = history.history["val_acc"]
    return {"test/accuracy": round(float(test_accuracy), 5), "val/accuracy/last": round(float(val_accuracy[-1]), 5),
            "val/accuracy/best": round(float(max(val_accuracy)), 5),
            "epoch/seconds": round(statistics.median(progress.seconds[1:] or progress.seconds), 2)}


def params_seeds():
    base = (yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8")) or {}).get("base") or {}
    return list(base.get("seeds") or [1, 2, 3])


def protocol(epochs, limit):
    data = (f"the first {limit} of the shuffled training and of the test reviews" if limit else
            "the 25,000 training reviews (prepared train + val, shuffled with RandomState(113) as "
            "keras.datasets.imdb does) and the 25,000 test reviews")
    return ("The tutorial's code: Sequential, no Input layer, Embedding(10000, 32), then: Flatten, Dense(1, sigmoid) "
            "(dense, maxlen 200); SimpleRNN(32), Dense(32, relu), Dense(1, sigmoid); LSTM(32), Dense(1, sigmoid) "
            "(maxlen 200 and 500); GRU(32), Dense(1) without a sigmoid, as published. rmsprop, binary_crossentropy, "
            f"metric acc, batch 128, {epochs} epochs, pad_sequences defaults (pre/pre), validation_split=0.2 in fit "
            f"(the last 20%), on {data}; the last epoch's model scored by model.evaluate (GRU: Keras' accuracy, "
            "raw output thresholded at 0.5). keras.utils.set_random_seed(seed) before each model and seed.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, help="default: params.yaml base.seeds, else 1 2 3")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit", type=int, default=0, help="training and test reviews kept, for a smoke run; 0 = all")
    parser.add_argument("--output", type=Path, default=ROOT / OUTPUT)
    args = parser.parse_args()
    seeds = args.seeds or params_seeds()
    if args.epochs < 1 or args.limit < 0 or len(set(seeds)) != len(seeds):
        parser.error("--epochs must be >= 1, --limit >= 0, and the seeds distinct")
    settings = {"seeds": seeds, "epochs": args.epochs, "limit": args.limit or None}
    try:
        existing = json.loads(args.output.read_text(encoding="utf-8")) if args.output.exists() else {}
    except ValueError as error:
        raise UserError(f"{args.output}: not a readable JSON file ({error}); move it away or pick --output") from None
    models = existing.get("models", {})
    if models and any(existing.get(key) != value for key, value in settings.items()):
        raise UserError(f"{args.output}: holds seeds {existing.get('seeds')}, epochs {existing.get('epochs')}, "
                        f"limit {existing.get('limit')}; this run has {seeds}, {args.epochs}, {args.limit or None}: "
                        "run with the same settings to merge, or pick another --output")
    commit, dirty = provenance.git_state(ROOT)
    head = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "machine": provenance.machine(),
            "git.commit": commit, "git.dirty": dirty, "versions": provenance.versions(),
            "protocol": protocol(args.epochs, args.limit), **settings}
    arrays = tutorial_arrays({MODELS[name][1] for name in args.models}, args.limit)
    for name in args.models:
        runs = []
        for seed in seeds:
            runs.append(run_once(name, seed, arrays, args.epochs))
            print(f"== {name} seed {seed}: " + ", ".join(f"{k} {v}" for k, v in runs[-1].items()), flush=True)
        _, maxlen, output_layers = MODELS[name]
        models[name] = {"maxlen": maxlen, "head": output_layers, **{key: [r[key] for r in runs] for key in runs[0]}}
        # Written after every model, all at once, so a stopped run keeps what it finished.
        report = {**head, "models": {n: models[n] for n in MODELS if n in models}}
        args.output.parent.mkdir(parents=True, exist_ok=True)
        partial = args.output.with_name(args.output.name + ".partial")
        partial.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        partial.replace(args.output)
    print(f"wrote {args.output}", flush=True)


if __name__ == "__main__":
    run(main)
