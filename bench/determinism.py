"""Benchmark: the cost of base.deterministic (TensorFlow op determinism) on these CPUs.

Op determinism is process-wide, so each run is a child process: LSTM(32) at
maxlen 200, EPOCHS epochs, deterministic off / on / on / off. Prints steady
seconds per epoch (first epoch left out) and the ratio on/off.

    .venv/bin/python bench/determinism.py [experiment]   # default lstm
"""

import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 3
CHILD = """
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
sys.path.insert(0, {root!r})
from pipeline import config
from pipeline.data import load_split
from pipeline.models import build
from pipeline.training import fit, seed_everything
e = config.load().train.experiments[{name!r}]
seed_everything(0, deterministic={deterministic})
model = build(e.architecture, optimizer="rmsprop", learning_rate=1e-3, num_words=10000, maxlen=e.maxlen,
              embedding_dim=e.embedding_dim, units=e.units)
train, val = load_split("train").capped(10000), load_split("val").capped(10000)
rows = fit(model, train, val, maxlen=e.maxlen, epochs={epochs}, batch_size=128,
           padding="pre", truncating="pre", bucketing=False, seed=0)
print("RESULT", json.dumps(rows))
"""


def child(name, deterministic):
    code = CHILD.format(root=str(ROOT), name=name, deterministic=deterministic, epochs=EPOCHS)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    rows = json.loads(out.split("RESULT ", 1)[1])
    return [r["epoch/seconds"] for r in rows[1:]], rows[-1]["val/accuracy"]


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "lstm"
    seconds = {False: [], True: []}
    for deterministic in (False, True, True, False):
        epoch_seconds, accuracy = child(name, deterministic)
        seconds[deterministic] += epoch_seconds
        print(f"deterministic={deterministic}: {', '.join(f'{s:.1f}' for s in epoch_seconds)} s/epoch, "
              f"val accuracy {accuracy:.4f}", flush=True)
    off, on = statistics.median(seconds[False]), statistics.median(seconds[True])
    print(f"\n{name}: {off:.2f} s/epoch without determinism, {on:.2f} with; ratio {on / off:.2f}")


if __name__ == "__main__":
    main()
