"""Benchmark: a no-op `dvc repro` after a full one, against DVC's own start-up.

Run in the project root after `./lab.sh pipeline` (everything up to date). It
times REPEATS no-op `dvc repro` runs and, alternating with them, `dvc version`
(the cost of starting DVC at all), so the ratio shows what checking the
pipeline adds. Goal from the issue: no-op repro <= 5 s.

    .venv/bin/python bench/dvc_noop.py
"""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 5


def timed(args):
    start = time.perf_counter()
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{result.stderr}")
    return time.perf_counter() - start, result.stdout


def main():
    dvc = str(Path(sys.executable).with_name("dvc"))
    os.environ["DVC_NO_ANALYTICS"] = "1"
    _, status = timed([dvc, "status"])
    if "up to date" not in status.lower():
        sys.exit("the pipeline is not up to date: run ./lab.sh pipeline first")
    repro, startup = [], []
    for _ in range(REPEATS):
        seconds, out = timed([dvc, "repro"])
        if "Running stage" in out:
            sys.exit("dvc repro ran a stage: not a no-op")
        repro.append(seconds)
        startup.append(timed([dvc, "version"])[0])
    stages = subprocess.run([dvc, "stage", "list"], cwd=ROOT, capture_output=True, text=True).stdout.count("\n")
    print(f"{REPEATS} runs each, alternating; {stages} stages in dvc.yaml; machine: {os.cpu_count()} cores")
    print(f"no-op dvc repro   median {statistics.median(repro):.2f} s  (min {min(repro):.2f}, max {max(repro):.2f})")
    print(f"dvc version       median {statistics.median(startup):.2f} s  (DVC start-up alone)")
    print(f"ratio repro/start-up: {statistics.median(repro) / statistics.median(startup):.2f}  (goal: repro <= 5 s)")


if __name__ == "__main__":
    main()
