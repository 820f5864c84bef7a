"""Benchmark: seconds per epoch of the train stage's code path vs. the tutorial's plain script.

Each side is a child process (the Keras backend is chosen per process), in ABBA order
(plain, ours, ours, plain) per experiment so drift cancels, one process at a time on all cores:

- "plain": bench/tutorial.py, the tutorial's code on the tutorial's backend, TensorFlow;
- "ours": ``pipeline.training.fit`` with its MLflow callback logging into a real SQLite store, on
  the pipeline's default backend (JAX where installed; ``--backend`` to choose), with
  ``train.bucketing`` as params.yaml sets it unless ``--bucketing`` turns it on.

Same prepared arrays, same models and seed. Each run trains EPOCHS epochs; the first (tracing,
compiling) is left out. Goal from the issue "Speed": ours <= 0.5x plain for the recurrent experiments,
throughput per core counted honestly: here each side is one process on every core. (Two pipeline
processes pinned to one core each add 1.4-1.5x throughput on JAX: bench/backend.py --pinned.)

    .venv/bin/python bench/train.py [experiment ...] [--bucketing] [--backend jax|tensorflow]
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
import json, sys, tempfile
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


def child(name: str, side: str, backend: str, bucketing: bool) -> tuple[list[float], str]:
    code = CHILD.format(root=str(ROOT), name=name, side=side, epochs=EPOCHS, bucketing=bucketing)
    env = os.environ | {"KERAS_BACKEND": "tensorflow" if side == "plain" else backend}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, text=True, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} {side} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    return result["seconds"], result["backend"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiments", nargs="*")
    parser.add_argument("--bucketing", action="store_true", help="ours with length-bucketed batches")
    parser.add_argument("--backend", choices=("jax", "tensorflow"),
                        help="ours on this backend (default: the pipeline's, pipeline/__init__.py)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import pipeline  # noqa: F401  (sets KERAS_BACKEND to the pipeline's default)
    from pipeline import config

    backend = args.backend or os.environ["KERAS_BACKEND"]
    names = args.experiments or list(config.load().train.experiments)
    rows = []
    for name in names:
        times: dict[str, list[float]] = {"plain": [], "ours": []}
        for side in ("plain", "ours", "ours", "plain"):
            seconds, used = child(name, side, backend, args.bucketing)
            times[side] += seconds[1:]
            print(f"  {name:16} {side:5} ({used}) epochs: {', '.join(f'{s:.2f}' for s in seconds)} s", flush=True)
        plain_s, ours_s = statistics.median(times["plain"]), statistics.median(times["ours"])
        rows.append((name, plain_s, ours_s, ours_s / plain_s))
    print(f"\nseconds per epoch, median of {2 * (EPOCHS - 1)} steady epochs each side; one process at a time on "
          f"{os.cpu_count()} cores; plain: the tutorial's script on tensorflow; ours: pipeline.training.fit on "
          f"{backend}{', bucketing on' if args.bucketing else ''}")
    print("| experiment | plain s/epoch | ours s/epoch | ours / plain |\n|---|---|---|---|")
    for name, plain_s, ours_s, ratio in rows:
        print(f"| `{name}` | {plain_s:.2f} | {ours_s:.2f} | **{ratio:.2f}** |")


if __name__ == "__main__":
    main()
