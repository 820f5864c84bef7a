"""Benchmark: the default experiments on a GPU (Keras on JAX with CUDA) beside the same machine's CPU.

Each run is a child process training one default experiment (params.yaml) on the prepared full data,
seed 0, with ``model.fit`` and the pipeline's own builder and padding, for ``--epochs`` epochs (the first
compiles and is left out of the median). The runs, in this order:

- ``gpu``: JAX on the GPU. Recurrent layers are forced onto cuDNN (``use_cudnn=True``, which raises
  where cuDNN cannot be used), the path ``use_cudnn="auto"`` takes in the pipeline on a GPU;
- ``gpu-again``: the same LSTM again, to see whether a rerun on the GPU repeats its numbers;
- ``gpu-scan``: LSTM and GRU on the GPU without cuDNN (``use_cudnn=False``: Keras' generic scan);
- ``cpu-2``: LSTM and GRU on JAX's CPU backend, pinned to two cores (this project's reference machine
  has two).

It needs only Keras, JAX, NumPy and PyYAML (no MLflow), so it can run on a bare GPU machine with the
prepared arrays copied beside it: data/prepared/{train,val}.

    python bench/gpu.py [--epochs 3] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
import pipeline  # sets KERAS_BACKEND
import jax, keras
from pipeline import config
from pipeline.data import load_split, pad
from pipeline.models import build
params = config.load()
e = params.train.experiments[{name!r}]
keras.utils.set_random_seed(0)
model = build(e.architecture, optimizer=params.train.optimizer, learning_rate=params.train.learning_rate,
              num_words=params.prepare.num_words, maxlen=e.maxlen, embedding_dim=e.embedding_dim, units=e.units,
              dropout=e.dropout)
for layer in model.layers:
    if hasattr(layer, "use_cudnn"):
        layer.use_cudnn = {cudnn!r}
train, val = load_split("train").capped(params.prepare.num_words), load_split("val").capped(params.prepare.num_words)
x, y = pad(train, e.maxlen), train.labels
xv, yv = pad(val, e.maxlen), val.labels
class Timer(keras.callbacks.Callback):
    rows = []
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({{"seconds": time.perf_counter() - self.start, "val_accuracy": float(logs["val_accuracy"])}})
model.fit(x, y, validation_data=(xv, yv), epochs={epochs}, batch_size=params.train.batch_size, verbose=0,
          callbacks=[Timer()])
device = jax.devices()[0]
print("RESULT", json.dumps({{"rows": Timer.rows, "device": getattr(device, "device_kind", str(device)),
                            "jax": jax.__version__, "keras": keras.__version__}}))
"""

RUNS = [
    *[("gpu", name, "cuda", True) for name in ("dense", "simplernn", "lstm", "gru", "lstm_maxlen500")],
    ("gpu-again", "lstm", "cuda", True),
    *[("gpu-scan", name, "cuda", False) for name in ("lstm", "gru")],
    *[("cpu-2", name, "cpu", "auto") for name in ("lstm", "gru")],
]


def run(name: str, platform: str, cudnn: bool | str, epochs: int) -> dict:
    code = CHILD.format(root=str(ROOT), name=name, epochs=epochs, cudnn=cudnn)
    command = [sys.executable, "-c", code]
    if platform == "cpu" and shutil.which("taskset"):
        command = ["taskset", "-c", "0,1", *command]
    env = os.environ | {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": platform, "TF_CPP_MIN_LOG_LEVEL": "2"}
    child = subprocess.run(command, cwd=ROOT, env=env, text=True, capture_output=True)
    if child.returncode != 0:
        lines = [line for line in child.stderr.splitlines() if line.strip() and "JAX_TRACEBACK" not in line]
        return {"error": ([line for line in lines if "Error" in line] or lines or ["no output"])[-1][:300]}
    return json.loads(child.stdout.split("RESULT ", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write every run's epochs here")
    args = parser.parse_args()
    results = []
    for label, name, platform, cudnn in RUNS:
        result = {"run": label, "experiment": name, **run(name, platform, cudnn, args.epochs)}
        results.append(result)
        if "error" in result:
            print(f"{label} {name}: FAILED: {result['error']}", flush=True)
            continue
        steady = statistics.median(r["seconds"] for r in result["rows"][1:])
        result["steady_seconds"] = steady
        seconds = ", ".join(f"{r['seconds']:.2f}" for r in result["rows"])
        accuracy = ", ".join(f"{r['val_accuracy']:.4f}" for r in result["rows"])
        print(f"{label} {name} on {result['device']}: {seconds} s/epoch; val accuracy {accuracy}", flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    print("\n| run | experiment | steady s/epoch | best val accuracy |\n|---|---|---|---|")
    for r in results:
        if "error" not in r:
            print(f"| {r['run']} | `{r['experiment']}` | {r['steady_seconds']:.2f} | "
                  f"{max(x['val_accuracy'] for x in r['rows']):.4f} |")


if __name__ == "__main__":
    main()
