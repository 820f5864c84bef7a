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


def main() -> None:
    command = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else ["./lab.sh", "pipeline"]
    started = time.perf_counter()
    marks = [("set-up", started)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    for line in process.stdout:
        sys.stdout.write(line)
        found = STAGE.search(line)
        if found:
            marks.append((found.group(1), time.perf_counter()))
    code = process.wait()
    ended = time.perf_counter()
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
