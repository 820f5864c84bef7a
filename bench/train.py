"""Benchmark: seconds per epoch of the train stage's code path vs. the tutorial's plain script.

Each run is a child process (the Keras backend is chosen per process) training one default
experiment on the same prepared arrays, model and seed. Three sides, in the order plain, ours,
pair, pair, ours, plain per experiment so that drift cancels:

- "plain": bench/tutorial.py, the tutorial's code on the tutorial's backend, TensorFlow, one
  process on every core (as the tutorial runs);
- "ours": ``pipeline.training.fit`` with its MLflow callback logging into a real SQLite store, on
  the pipeline's default backend (JAX where installed; ``--backend`` to choose), with
  ``train.bucketing`` as params.yaml sets it unless ``--bucketing`` turns it on; one process on
  every core;
- "pair": the same as ours, but as ``pipeline.repro`` runs replicates: one process per core, side by
  side, each pinned to its core. Its figure is machine throughput: the median epoch of one process
  divided by the number of processes (two epochs finish in that time on two cores).

Each run trains EPOCHS epochs; the first (tracing, compiling) is left out. Goal from the issue
"Speed": ours <= 0.5x plain for the recurrent experiments, throughput per core counted honestly:
the table says how many processes ran on how many cores for each column.

    .venv/bin/python bench/train.py [experiment ...] [--bucketing] [--backend jax|tensorflow] [--no-pair]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 3
CHILD = """
import json, os, sys, tempfile
if {core} is not None:  # before JAX or TensorFlow size their thread pools, as pipeline.repro pins a stage
    os.sched_setaffinity(0, {{{core}}})
sys.path.insert(0, {root!r})
import pipeline
import keras, mlflow
from bench.tutorial import tutorial_fit
from pipeline import config
from pipeline.architectures import bucketed
from pipeline.data import load_split, pad
from pipeline.models import build
from pipeline.training import fit, seed_everything
params = config.load()
e = params.train.experiments[{name!r}]
train, val = load_split("train").capped(params.prepare.num_words), load_split("val").capped(params.prepare.num_words)
seed_everything(0, deterministic=False)
if {side!r} == "plain":
    _, seconds = tutorial_fit(e.architecture, e.maxlen, pad(train, e.maxlen), train.labels, pad(val, e.maxlen),
                              val.labels, {epochs})
else:
    bucketing = bucketed(params.train.bucketing or {bucketing!r}, e.architecture)
    model = build(e.architecture, optimizer="rmsprop", learning_rate=1e-3, num_words=params.prepare.num_words,
                  maxlen=None if bucketing else e.maxlen, embedding_dim=32, units=32)
    with tempfile.TemporaryDirectory() as store:
        mlflow.set_tracking_uri(f"sqlite:///{{store}}/mlflow.db")
        mlflow.set_experiment("bench")
        with mlflow.start_run():
            rows = fit(model, train, val, maxlen=e.maxlen, epochs={epochs}, batch_size=128, padding="pre",
                       truncating="pre", bucketing=bucketing, seed=0)
    seconds = [r["epoch/seconds"] for r in rows]
print("RESULT", json.dumps({{"seconds": seconds, "backend": keras.backend.backend()}}))
"""


def start(name: str, side: str, backend: str, bucketing: bool, core: int | None = None) -> subprocess.Popen:
    code = CHILD.format(root=str(ROOT), name=name, side=side, epochs=EPOCHS, bucketing=bucketing, core=core)
    env = os.environ | {"KERAS_BACKEND": "tensorflow" if side == "plain" else backend}
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def result(name: str, side: str, child: subprocess.Popen) -> tuple[list[float], str]:
    out, err = child.communicate()
    if child.returncode != 0:
        raise SystemExit(f"{name} {side} failed ({child.returncode}):\n{err[-3000:]}")
    found = json.loads(out.split("RESULT ", 1)[1])
    return found["seconds"], found["backend"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiments", nargs="*")
    parser.add_argument("--bucketing", action="store_true", help="ours with length-bucketed batches")
    parser.add_argument("--backend", choices=("jax", "tensorflow"),
                        help="ours on this backend (default: the pipeline's, pipeline/__init__.py)")
    parser.add_argument("--no-pair", action="store_true", help="leave out the side-by-side processes")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import pipeline  # noqa: F401  (sets KERAS_BACKEND to the pipeline's default)
    from pipeline import config

    backend = args.backend or os.environ["KERAS_BACKEND"]
    cores = sorted(os.sched_getaffinity(0))
    names = args.experiments or list(config.load().train.experiments)
    sides = ("plain", "ours") if args.no_pair else ("plain", "ours", "pair")
    rows = []
    for name in names:
        times: dict[str, list[float]] = {side: [] for side in sides}
        for side in sides + sides[::-1]:
            pinned = cores if side == "pair" else [None]
            children = [start(name, side, backend, args.bucketing, core) for core in pinned]
            for core, child in zip(pinned, children, strict=True):
                seconds, used = result(name, side, child)
                times[side] += seconds[1:]
                where = f"core {core}" if core is not None else f"{len(cores)} cores"
                print(f"  {name:16} {side:5} ({used}, {where}) epochs: {', '.join(f'{s:.2f}' for s in seconds)} s",
                      flush=True)
        medians = {side: statistics.median(times[side]) for side in sides}
        if "pair" in medians:
            medians["pair"] /= len(cores)  # machine throughput: len(cores) epochs finish in one epoch's time
        rows.append((name, medians))
    print(f"\nseconds per epoch, median of steady epochs ({EPOCHS - 1} per process, first left out); plain: the "
          f"tutorial's script on tensorflow, 1 process on {len(cores)} cores; ours: pipeline.training.fit on "
          f"{backend}{', bucketing on' if args.bucketing else ''}, 1 process on {len(cores)} cores"
          + ("" if args.no_pair else f"; pair: the same, {len(cores)} processes side by side, 1 core each, "
             f"per-process epoch / {len(cores)}"))
    header = "| experiment | plain s/epoch | ours s/epoch | ours / plain |"
    if not args.no_pair:
        header += f" pair ({len(cores)} processes) s/epoch | pair / plain |"
    print(header + "\n" + "|---" * header.count(" | ") + "|---|")
    for name, m in rows:
        line = f"| `{name}` | {m['plain']:.2f} | {m['ours']:.2f} | **{m['ours'] / m['plain']:.2f}** |"
        if "pair" in m:
            line += f" {m['pair']:.2f} | **{m['pair'] / m['plain']:.2f}** |"
        print(line)


if __name__ == "__main__":
    main()
