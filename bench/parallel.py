"""Benchmark: train stages one at a time on every core (plain `dvc repro`) against `pipeline.repro`,
which runs them side by side on one core each. Same stages, same data, in one run, alternating.

    python bench/parallel.py [--epochs 2] [--rounds 1] [--jobs 2] [STAGE ...]

Run it in a scratch clone that has run `prepare` (it rewrites the named stages' outputs and dvc.lock).
For the duration it sets `epochs` of the stages' experiments in params.yaml (restored at the end), then
per round: serial, `dvc repro -f -s` of each stage in turn; parallel, `python -m pipeline.repro --jobs N
-f` of all of them. It checks that both give the same metrics files, bit for bit (base.deterministic:
a model trained on one core is the one trained on two), and prints the wall times and their ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
from pathlib import Path

import yaml

DEFAULT = ["train@lstm-1", "train@lstm-2", "train@gru-1", "train@gru-2"]


def digest(stages: list[str]) -> dict[str, str]:
    out = {}
    for stage in stages:
        experiment, seed = stage.removeprefix("train@").rsplit("-", 1)
        path = Path(f"metrics/train/{experiment}/seed{seed}.json")
        values = {k: v for k, v in yaml.safe_load(path.read_text()).items() if "seconds" not in k}
        out[stage] = hashlib.sha256(repr(sorted(values.items())).encode()).hexdigest()[:12]
    return out


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("stages", nargs="*", default=DEFAULT)
    args = parser.parse_args()
    params_path = Path("params.yaml")
    original = params_path.read_text()
    params = yaml.safe_load(original)
    for stage in args.stages:
        params["train"]["experiments"][stage.removeprefix("train@").rsplit("-", 1)[0]]["epochs"] = args.epochs
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    dvc = [sys.executable, "-m", "dvc"]
    rows = []
    try:
        for round_ in range(1, args.rounds + 1):
            serial = sum(timed([*dvc, "repro", "-f", "-s", stage]) for stage in args.stages)
            serial_digest = digest(args.stages)
            parallel = timed([sys.executable, "-m", "pipeline.repro", "--jobs", str(args.jobs), "-f", *args.stages])
            same = digest(args.stages) == serial_digest
            rows.append((round_, serial, parallel, same))
            print(f"round {round_}: serial {serial:.1f} s, side by side ({args.jobs} jobs) {parallel:.1f} s, "
                  f"speed-up {serial / parallel:.2f}x; metrics identical: {same}", flush=True)
    finally:
        params_path.write_text(original)
    print(f"\n{len(args.stages)} stages ({', '.join(args.stages)}), {args.epochs} epochs each")
    print("| round | one at a time, every core | side by side, one core each | speed-up | same metrics |")
    print("|---|---|---|---|---|")
    for round_, serial, parallel, same in rows:
        print(f"| {round_} | {serial:.1f} s | {parallel:.1f} s | {serial / parallel:.2f}x | {same} |")
    sys.exit(0 if all(r[3] for r in rows) else 1)


if __name__ == "__main__":
    main()
