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
exits only when all of them have; a second Ctrl-C or SIGTERM kills them. No stage is started after a
failure or a signal.
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
    """Run the selected stages (or every stage), up to ``jobs`` at a time; the exit status."""
    graph, forced = select(stage_graph(root), targets or [])
    runner = Runner(root, graph, forced if force else set(), jobs, cores)
    signal.signal(signal.SIGINT, runner.forward)
    signal.signal(signal.SIGTERM, runner.forward)
    return runner.run()


class Runner:
    """The stages of ``graph`` (stage -> the stages it needs), each a ``dvc repro --single-item`` of its own."""

    def __init__(self, root: Path, graph: dict[str, set[str]], forced: set[str], jobs: int, cores: list[int]):
        self.root, self.graph, self.forced, self.jobs, self.cores = root, graph, forced, jobs, cores
        self.listed = list(graph)
        self.done: set[str] = set()
        self.running: dict[str, Running] = {}
        self.failed: list[str] = []
        self.said = threading.Lock()
        self.stopping = 0
        self.killed = False

    def say(self, line: str) -> None:
        with self.said:
            print(line, flush=True)

    def forward(self, signum, frame) -> None:
        """The first Ctrl-C or SIGTERM: SIGINT to every stage's process group, whichever signal came: the
        stage unwinds as from Ctrl-C (its runs end KILLED), and DVC, which ignores SIGINT while its command
        runs, records nothing (on SIGTERM DVC itself would exit first and leave the stage unwinding alone).
        The runner still waits for each stage's own process, which holds its output pipe, even where DVC's
        shell (/bin/sh when SHELL is unset: dash, which does not exec the command) died of the SIGINT at once.

        A second one: SIGKILL to them all, for a stage that hangs while it unwinds. What they leave is
        cleared by the next run: their MLflow runs marked KILLED, their trials failed, DVC's locks freed."""
        first = not self.stopping
        self.stopping = self.stopping or signum
        self.killed = not first
        for job in list(self.running.values()):
            try:
                os.killpg(job.process.pid, signal.SIGINT if first else signal.SIGKILL)
            except ProcessLookupError:
                pass

    def start(self, stage: str, slot: int) -> Running:
        command = [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--single-item",
                   *(["--force"] if stage in self.forced else []), stage]
        core = self.cores[slot % len(self.cores)] if self.jobs > 1 else None
        if core is not None:  # one core per slot; one job keeps every core, like dvc repro
            command = [sys.executable, "-c", PIN, str(core), *command]
        process = subprocess.Popen(command, cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, bufsize=1, start_new_session=True)
        job = Running(stage, process, slot)
        width = max(map(len, self.listed))

        def relay() -> None:
            for line in process.stdout:  # universal newlines: progress bars arrive a line per update
                if line.strip():
                    self.say(f"{stage:<{width}} | {line.rstrip()}")

        job.reader = threading.Thread(target=relay, daemon=True)
        job.reader.start()
        self.say(f"== {stage}: started on {'all cores' if core is None else f'core {core}'} ({len(self.done)} of "
                 f"{len(self.listed)} stages done, {len(self.running) + 1} running)")
        return job

    def run(self) -> int:
        began = time.monotonic()
        while len(self.done) < len(self.listed):
            if not self.failed and not self.stopping:
                ready = [s for s in self.listed if s not in self.done and s not in self.running
                         and self.graph[s] <= self.done]
                free = sorted(set(range(self.jobs)) - {job.slot for job in self.running.values()})
                for stage, slot in zip(order(ready, self.listed), free, strict=False):
                    self.running[stage] = self.start(stage, slot)
            if not self.running:
                break
            self.finish(_wait_any(self.running))
        if self.stopping:
            how = ("killed at the second signal (their MLflow runs are marked KILLED and their trials failed by "
                   "the next run)" if self.killed else "stopped")
            print(f"error: interrupted ({signal.Signals(self.stopping).name}); the stages that were running were "
                  f"{how} and DVC recorded none of them", file=sys.stderr)
            return 128 + self.stopping
        if self.failed:
            left = [s for s in self.listed if s not in self.done and s not in self.failed]
            print(f"error: stage {', '.join(self.failed)} failed (its output is above, prefixed with its name); "
                  f"not run: {', '.join(left) or 'none'}", file=sys.stderr)
            return 1
        self.say(f"== all {len(self.listed)} stages done in {(time.monotonic() - began) / 60:.1f} min, up to "
                 f"{self.jobs} at a time")
        return 0

    def finish(self, stage: str) -> None:
        job = self.running[stage]
        job.reader.join()  # its output's end: the stage's own process has exited too, not only DVC (forward)
        del self.running[stage]
        minutes = (time.monotonic() - job.started) / 60
        if job.process.returncode == 0:
            self.done.add(stage)
            self.say(f"== {stage}: done in {minutes:.1f} min ({len(self.done)} of {len(self.listed)} stages done)")
        else:
            self.failed.append(stage)
            self.say(f"== {stage}: FAILED (exit {job.process.returncode}) after {minutes:.1f} min"
                     + ("; starting no other stage, waiting for the running ones" if self.running else ""))


def _wait_any(running: dict[str, Running]) -> str:
    """The name of the next stage to finish (polling: the signal handler must be able to run meanwhile)."""
    while True:
        for stage, job in running.items():
            if job.process.poll() is not None:
                return stage
        time.sleep(0.2)


if __name__ == "__main__":
    main()
