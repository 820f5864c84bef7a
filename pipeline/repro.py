"""The DVC pipeline with independent stages side by side: ``python -m pipeline.repro [--jobs N] [-f]``.

DVC stays the pipeline runner. Every stage is run by ``dvc repro --single-item <stage>``, which
decides whether the stage is stale, runs it and records it in dvc.lock. DVC releases its repository
lock while a stage's command runs and guards every dependency and output with a lock of its own,
which is what makes its documented way of running stages in parallel (several ``dvc repro`` of
independent targets at once) safe; ``--wait-for-lock`` lets two of them record results one after
the other. This module decides only how many run at once and where: a stage starts when every stage
it depends on (DVC's own graph) has finished, each on a core of its own.

Why: TensorFlow's second thread buys almost nothing for these small recurrent models, so two
trainings pinned to one core each nearly double the throughput of one on both cores
(docs/measurements.md). With ``base.deterministic`` the numbers do not depend on it: a model trained
on one core is bit for bit the one trained on two.

Ctrl-C or SIGTERM to the runner stops every running stage (as Ctrl-C, to each one's process group):
their MLflow runs end KILLED, their Optuna trials FAIL, DVC records nothing for them, and the runner
exits only when all of them have. No stage is started after a failure or a signal.
``--jobs 1`` runs one stage at a time on every core, as plain ``dvc repro`` does.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# Runs the command with its CPU affinity set: exec'd in the child, so no Python code of ours runs
# between fork and exec (preexec_fn is unsafe beside the reader threads).
PIN = ("import os, sys; os.sched_setaffinity(0, {int(c) for c in sys.argv[1].split(',')}); "
       "os.execvp(sys.argv[2], sys.argv[2:])")


@dataclass
class Running:
    stage: str
    process: subprocess.Popen
    slot: int
    started: float = field(default_factory=time.monotonic)
    reader: threading.Thread | None = None


def stage_graph(root: Path) -> dict[str, set[str]]:
    """Every stage of the project's dvc.yaml and the stages it depends on, from DVC's own graph."""
    from dvc.repo import Repo

    def name(stage) -> str:  # as `dvc repro` in the project root takes it
        return stage.name if Path(stage.path) == root.resolve() / "dvc.yaml" else stage.addressing

    with Repo(str(root)) as repo:
        graph = repo.index.graph  # an edge runs from a stage to each stage it depends on
        return {name(stage): {name(dep) for dep in graph.successors(stage)} for stage in graph}


def order(ready: list[str], listed: list[str]) -> list[str]:
    """Which ready stage first: whole studies (the longest single units) first, then the rest from the end
    of dvc.yaml's order, where the longest experiments stand, so no long stage is left to run alone."""
    return sorted(ready, key=lambda s: (not s.startswith("tune@"), -listed.index(s)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Run `dvc repro` with independent stages side by side, one core each. Every stage is run "
                    "by `dvc repro --single-item`, so what runs is DVC's decision; this only chooses how many "
                    "at once.")
    cores = sorted(os.sched_getaffinity(0))
    jobs = os.environ.get("LAB_JOBS", str(len(cores)))
    if not jobs.isdigit():
        print(f"error: LAB_JOBS = {jobs!r}: must be a whole number of stages at once, at least 1", file=sys.stderr)
        sys.exit(2)
    parser.add_argument("--jobs", "-j", type=int, default=int(jobs),
                        help=f"stages at once (default: LAB_JOBS or this machine's cores, {len(cores)}); "
                             "1 = one at a time on every core")
    parser.add_argument("--force", "-f", action="store_true",
                        help="rerun the targets even if nothing changed (dvc repro -f); stages they depend on run "
                             "only if stale")
    parser.add_argument("targets", nargs="*",
                        help="stages (train@lstm-1) or stage groups (train) to run, with whatever they depend on; "
                             "default: every stage")
    arguments = parser.parse_args()
    if arguments.jobs < 1:
        print(f"error: --jobs = {arguments.jobs}: must be at least 1", file=sys.stderr)
        sys.exit(2)
    sys.exit(run(Path.cwd(), arguments.jobs, arguments.force, cores, arguments.targets))


def select(graph: dict[str, set[str]], targets: list[str]) -> tuple[dict[str, set[str]], set[str]]:
    """The part of the graph the targets need (the targets and every stage upstream), and the targets."""
    if not targets:
        return graph, set(graph)
    chosen: set[str] = set()
    for target in targets:
        found = {s for s in graph if s == target or s.split("@")[0] == target}
        if not found:
            groups = sorted({s.split("@")[0] for s in graph})
            print(f"error: no stage {target!r} in dvc.yaml; stages: {', '.join(groups)} (or one of their "
                  "items, e.g. train@lstm-1)", file=sys.stderr)
            sys.exit(2)
        chosen |= found
    needed, frontier = set(chosen), list(chosen)
    while frontier:
        for upstream in graph[frontier.pop()]:
            if upstream not in needed:
                needed.add(upstream)
                frontier.append(upstream)
    return {s: deps & needed for s, deps in graph.items() if s in needed}, chosen


def run(root: Path, jobs: int, force: bool, cores: list[int], targets: list[str] | None = None) -> int:
    graph, forced = select(stage_graph(root), targets or [])
    listed = list(graph)
    done: set[str] = set()
    running: dict[str, Running] = {}
    failed: list[str] = []
    said = threading.Lock()
    stopping = [0]

    def say(line: str) -> None:
        with said:
            print(line, flush=True)

    def forward(signum, frame) -> None:
        # SIGINT to every stage's process group, whichever signal came: the stage unwinds as from Ctrl-C
        # (its runs end KILLED), and DVC, which ignores SIGINT while its command runs, waits for it and
        # records nothing (on SIGTERM DVC itself would exit first and leave the stage unwinding alone).
        stopping[0] = signum
        for job in list(running.values()):
            try:
                os.killpg(job.process.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)

    def start(stage: str, slot: int) -> Running:
        command = [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--single-item",
                   *(["--force"] if force and stage in forced else []), stage]
        if jobs > 1:  # one core per slot; one job keeps every core, like dvc repro
            command = [sys.executable, "-c", PIN, str(cores[slot % len(cores)]), *command]
        process = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   bufsize=1, start_new_session=True)
        job = Running(stage, process, slot)
        width = max(map(len, listed))

        def relay() -> None:
            for line in process.stdout:  # universal newlines: progress bars arrive a line per update
                if line.strip():
                    say(f"{stage:<{width}} | {line.rstrip()}")

        job.reader = threading.Thread(target=relay, daemon=True)
        job.reader.start()
        where = f"core {cores[slot % len(cores)]}" if jobs > 1 else "all cores"
        say(f"== {stage}: started on {where} ({len(done)} of {len(listed)} stages done, {len(running) + 1} running)")
        return job

    began = time.monotonic()
    while len(done) < len(listed):
        if not failed and not stopping[0]:
            ready = [s for s in listed if s not in done and s not in running and graph[s] <= done]
            free = sorted(set(range(jobs)) - {job.slot for job in running.values()})
            for stage, slot in zip(order(ready, listed), free, strict=False):
                running[stage] = start(stage, slot)
        if not running:
            break
        finished = _wait_any(running)
        job = running.pop(finished)
        job.reader.join()
        seconds = time.monotonic() - job.started
        if job.process.returncode == 0:
            done.add(finished)
            say(f"== {finished}: done in {seconds / 60:.1f} min ({len(done)} of {len(listed)} stages done)")
        else:
            failed.append(finished)
            say(f"== {finished}: FAILED (exit {job.process.returncode}) after {seconds / 60:.1f} min"
                + ("; starting no other stage, waiting for the running ones" if running else ""))
    if stopping[0]:
        print(f"error: interrupted ({signal.Signals(stopping[0]).name}); the stages that were running were "
              "stopped and DVC recorded none of them", file=sys.stderr)
        return 128 + stopping[0]
    if failed:
        left = [s for s in listed if s not in done and s not in failed]
        print(f"error: stage {', '.join(failed)} failed (its output is above, prefixed with its name); "
              f"not run: {', '.join(left) or 'none'}", file=sys.stderr)
        return 1
    say(f"== all {len(listed)} stages done in {(time.monotonic() - began) / 60:.1f} min, up to {jobs} at a time")
    return 0


def _wait_any(running: dict[str, Running]) -> str:
    """The name of the next stage to finish (polling: the signal handler must be able to run meanwhile)."""
    while True:
        for stage, job in running.items():
            if job.process.poll() is not None:
                return stage
        time.sleep(0.2)


if __name__ == "__main__":
    main()
