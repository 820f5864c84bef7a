"""Benchmark: a whole run from scratch, with the time of every stage.

Runs a command (by default the Quickstart's `./lab.sh pipeline`), passes its output
through, and stamps every "Running stage '<name>'" line DVC prints; at the end it
prints a table of seconds per stage (set-up is everything before the first stage)
and the total. Standard library only, so it runs before `.venv` exists:

    IMDB_ARCHIVE=... python3 bench/full_run.py                 # in a fresh clone
    python3 bench/full_run.py -- .venv/bin/dvc repro -f       # or any command

It also samples, every second, the resident memory of the command and all its descendants
(from /proc): the peak of their sum (what concurrent workers hold together), the largest
single process and the commands that peaked highest are printed at the end.

Goals (issue "Speed"): the whole default pipeline from a fresh clone <= 30 minutes on the
project's 2-core machine, peak memory <= 3 GB summed over concurrent workers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

STAGE = re.compile(r"Running stage '([^']+)'")
# pipeline.repro (the Quickstart's runner) says when each stage started and how long it took.
STARTED = re.compile(r"^== (\S+): started")
DONE = re.compile(r"^== (\S+): done in ([\d.]+) min")


class MemorySampler(threading.Thread):
    """Peak resident memory of a process tree: the sum over processes alive together, and the largest one."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root, self.peak_sum, self.peak_one, self.stopped = root, 0, 0, threading.Event()
        self.by_command: dict[str, int] = {}  # each command's peak (a stage's `python -m ...` line)

    def tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        parent = int(stat.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(parent, []).append(int(entry))
        found, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children.get(pid, [])
        return found

    def run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self.stopped.wait(1.0):
            sizes = []
            for pid in self.tree():
                try:
                    with open(f"/proc/{pid}/statm") as statm:
                        sizes.append(int(statm.read().split()[1]) * page)
                    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                        command = " ".join(cmdline.read().decode(errors="replace").split("\0")).strip()[-90:]
                except (OSError, IndexError, ValueError):
                    continue
                self.by_command[command] = max(self.by_command.get(command, 0), sizes[-1])
            self.peak_sum, self.peak_one = max(self.peak_sum, sum(sizes)), max(self.peak_one, max(sizes, default=0))

    def report(self) -> str:
        self.stopped.set()
        top = sorted(self.by_command.items(), key=lambda item: -item[1])[:8]
        return (f"peak memory: {self.peak_sum / 2**30:.2f} GiB summed over the processes alive together, "
                f"{self.peak_one / 2**30:.2f} GiB the largest one (resident, sampled every second)\n"
                + "".join(f"  {size / 2**30:5.2f} GiB  {command}\n" for command, size in top))


def main() -> None:
    command = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else ["./lab.sh", "pipeline"]
    started = time.perf_counter()
    marks = [("set-up", started)]
    durations: dict[str, float] = {}
    first_start = None
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    memory = MemorySampler(process.pid)
    memory.start()
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
        print(memory.report())
        sys.exit(code)
    print(f"\n{'stage':<28}{'seconds':>10}")
    groups: dict[str, float] = {}
    for (name, start), (_, end) in zip(marks, marks[1:] + [("end", ended)], strict=True):
        print(f"{name:<28}{end - start:>10.1f}")
        groups[name.split("@")[0]] = groups.get(name.split("@")[0], 0.0) + end - start
    print("by stage kind: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in groups.items()))
    print(f"total: {(ended - started) / 60:.1f} min, exit code {code}")
    print(memory.report())
    sys.exit(code)


if __name__ == "__main__":
    main()
