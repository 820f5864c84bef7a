"""Benchmark: the prepare stage on the full archive vs. the tutorial-style reference.

Runs both as child processes, alternating, REPEATS times each, in this one run
(these shared machines drift by 10-20%, so only side-by-side ratios mean
anything). Reports wall seconds and peak resident memory of each, and the
ratio ours / reference. Goal from the issue: prepare <= 15 s and <= 2 GB.

    IMDB_ARCHIVE=../shared/data/imdb/aclImdb_v1_labelled.tar.gz .venv/bin/python bench/prepare.py
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 2


def measure(args, cwd, env=None):
    """Wall seconds and peak RSS (MiB) of one child process."""
    start = time.perf_counter()
    # wait4 returns this child's own resource usage, so its peak RSS is exact.
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(map(str, args))} failed")
    return seconds, usage.ru_maxrss / 1024


def main():
    archive = Path(os.environ.get("IMDB_ARCHIVE", ROOT.parent / "shared/data/imdb/aclImdb_v1_labelled.tar.gz"))
    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        shutil.copytree(ROOT / "pipeline", work / "pipeline")
        shutil.copy(ROOT / "params.yaml", work)
        (work / "data/raw").mkdir(parents=True)
        shutil.copy(archive, work / "data/raw/aclImdb_v1.tar.gz")
        ours, reference = [], []
        for _ in range(REPEATS):
            ours.append(measure([sys.executable, "-m", "pipeline.prepare"], work))
            reference.append(measure([sys.executable, str(ROOT / "bench/reference_prepare.py"), str(archive)], work))
    print(f"archive: {archive.name}, {REPEATS} runs each, alternating; machine: {os.cpu_count()} cores")
    print(f"{'':28}{'wall s (median)':>16}{'peak MiB (max)':>16}")
    for name, runs in (("prepare stage (ours)", ours), ("tutorial-style reference", reference)):
        print(f"{name:28}{statistics.median(r[0] for r in runs):16.1f}{max(r[1] for r in runs):16.0f}")
    ratio = statistics.median(r[0] for r in ours) / statistics.median(r[0] for r in reference)
    print(f"time ratio ours/reference: {ratio:.2f}  (goal: ours <= 15 s and <= 2048 MiB)")


if __name__ == "__main__":
    main()
