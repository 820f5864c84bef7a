"""Benchmark: Keras on the TensorFlow backend against Keras on the JAX backend, on the pipeline's own code.

The backend is chosen per process (KERAS_BACKEND), so each run is a child process training one
default experiment with ``pipeline.training.fit`` on the prepared full data (seed 0, determinism as
in params.yaml, the best epoch kept), in ABBA order: tensorflow, jax, jax, tensorflow. Prints the steady
seconds per epoch (first epoch left out: it compiles), the median per backend and the ratio
jax/tensorflow, with each child's best validation accuracy (same seed, other numerics: expect values
within the seed spread, not equal ones).

With ``--pinned`` two children of the same backend run side by side, each pinned to one core (the way
``pipeline.repro --jobs 2`` runs stages): the figure then is seconds per epoch per process.

    .venv/bin/python bench/backend.py [experiment ...] [--epochs 3] [--pinned]   # default: all five
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
sys.path.insert(0, {root!r})
from pipeline import config
from pipeline.data import load_split
from pipeline.models import build
from pipeline.training import fit, seed_everything
params = config.load()
e = params.train.experiments[{name!r}]
seed_everything(0, deterministic=params.base.deterministic)
model = build(e.architecture, optimizer=params.train.optimizer, learning_rate=params.train.learning_rate,
              num_words=params.prepare.num_words, maxlen=e.maxlen, embedding_dim=e.embedding_dim, units=e.units,
              dropout=e.dropout)
cap = params.prepare.num_words
rows = fit(model, load_split("train").capped(cap), load_split("val").capped(cap), maxlen=e.maxlen, epochs={epochs},
           batch_size=params.train.batch_size, padding="pre", truncating="pre", bucketing=False, seed=0, keep="best")
print("RESULT", json.dumps(rows))
"""


def start(name: str, backend: str, epochs: int, core: int | None) -> subprocess.Popen:
    code = CHILD.format(root=str(ROOT), name=name, epochs=epochs)
    command = [sys.executable, "-c", code] if core is None else ["taskset", "-c", str(core), sys.executable, "-c", code]
    return subprocess.Popen(command, cwd=ROOT, env=os.environ | {"KERAS_BACKEND": backend}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def result(child: subprocess.Popen) -> tuple[list[float], float]:
    out, err = child.communicate()
    if child.returncode != 0:
        raise SystemExit(f"child failed ({child.returncode}):\n{err[-3000:]}")
    rows = json.loads(out.split("RESULT ", 1)[1])
    return [r["epoch/seconds"] for r in rows[1:]], max(r["val/accuracy"] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiments", nargs="*", default=["dense", "simplernn", "lstm", "gru", "lstm_maxlen500"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--pinned", action="store_true", help="two children side by side, one core each")
    args = parser.parse_args()
    summary = []
    for name in args.experiments:
        seconds: dict[str, list[float]] = {"tensorflow": [], "jax": []}
        for backend in ("tensorflow", "jax", "jax", "tensorflow"):
            children = [start(name, backend, args.epochs, core) for core in ((0, 1) if args.pinned else (None,))]
            for child in children:
                epoch_seconds, accuracy = result(child)
                seconds[backend] += epoch_seconds
                print(f"{name} {backend}: {', '.join(f'{s:.2f}' for s in epoch_seconds)} s/epoch, best val accuracy "
                      f"{accuracy:.4f}", flush=True)
        tf, jax = statistics.median(seconds["tensorflow"]), statistics.median(seconds["jax"])
        summary.append((name, tf, jax))
    print(f"\n{'pinned: two processes, one core each' if args.pinned else 'one process, all cores'}; "
          f"median steady s/epoch")
    print("| experiment | tensorflow | jax | jax / tensorflow |\n|---|---|---|---|")
    for name, tf, jax in summary:
        print(f"| `{name}` | {tf:.2f} | {jax:.2f} | **{jax / tf:.2f}** |")


if __name__ == "__main__":
    main()
