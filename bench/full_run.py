"""Benchmark: a whole run from scratch, with the time of every stage.

Runs a command (by default the Quickstart's `./lab.sh pipeline`), passes its output
through, and stamps every "Running stage '<name>'" line DVC prints; at the end it
prints a table of seconds per stage (set-up is everything before the first stage)
and the total. Standard library only, so it runs before `.venv` exists:

    IMDB_ARCHIVE=... python3 bench/full_run.py                 # in a fresh clone
    python3 bench/full_run.py -- .venv/bin/dvc repro -f       # or any command

Goal from the evaluate/report issue: the whole `dvc repro` from scratch <= 30 minutes
on the project's 2-core machine.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

STAGE = re.compile(r"Running stage '([^']+)'")
# pipeline.repro (the Quickstart's runner) says when each stage started and how long it took.
STARTED = re.compile(r"^== (\S+): started")
DONE = re.compile(r"^== (\S+): done in ([\d.]+) min")


def main() -> None:
    command = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else ["./lab.sh", "pipeline"]
    started = time.perf_counter()
    marks = [("set-up", started)]
    durations: dict[str, float] = {}
    first_start = None
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    for line in process.stdout:
        sys.stdout.write(line)
        found = STAGE.search(line)
        if found and not line.startswith(found.group(1) + " "):  # not a line relayed by pipeline.repro
            marks.append((found.group(1), time.perf_counter()))
        if STARTED.match(line) and first_start is None:
            first_start = time.perf_counter()
        done = DONE.match(line)
        if done:
            durations[done.group(1)] = float(done.group(2)) * 60
    code = process.wait()
    ended = time.perf_counter()
    if durations:  # stages side by side: each one's own time, and the wall time of the whole
        print(f"\n{'stage':<28}{'seconds':>10}")
        print(f"{'set-up':<28}{(first_start or ended) - started:>10.1f}")
        groups: dict[str, float] = {}
        for name, seconds in durations.items():
            print(f"{name:<28}{seconds:>10.1f}")
            groups[name.split("@")[0]] = groups.get(name.split("@")[0], 0.0) + seconds
        print("stage time by kind (summed over stages that ran side by side): "
              + ", ".join(f"{k} {v / 60:.1f} min" for k, v in groups.items()))
        print(f"pipeline wall time: {(ended - (first_start or ended)) / 60:.1f} min; "
              f"total with set-up: {(ended - started) / 60:.1f} min, exit code {code}")
        sys.exit(code)
    print(f"\n{'stage':<28}{'seconds':>10}")
    groups: dict[str, float] = {}
    for (name, start), (_, end) in zip(marks, marks[1:] + [("end", ended)], strict=True):
        print(f"{name:<28}{end - start:>10.1f}")
        groups[name.split("@")[0]] = groups.get(name.split("@")[0], 0.0) + end - start
    print("by stage kind: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in groups.items()))
    print(f"total: {(ended - started) / 60:.1f} min, exit code {code}")
    sys.exit(code)


if __name__ == "__main__":
    main()
