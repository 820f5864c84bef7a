"""pipeline.repro's choice of stages, from DVC's own graph of the project's dvc.yaml (the end-to-end run
through it is in test_evaluate, its interruption in reliability/test_interruption)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.repro import order, select, stage_graph
from tests.conftest import run


def test_targets_bring_what_they_depend_on_and_only_they_are_forced(project: Path):
    graph = stage_graph(project)
    assert graph["train@lstm-1"] == {"prepare"} and graph["prepare"] == {"download"}
    assert {"evaluate", "speed"} <= graph["report"]

    part, forced = select(graph, ["train@lstm-1", "speed"])
    assert set(part) == {"download", "prepare", "train@lstm-1", "speed"} and forced == {"train@lstm-1", "speed"}
    part, forced = select(graph, ["tune"])  # a group: every item of the foreach
    assert forced == {"tune@dense", "tune@simplernn", "tune@lstm", "tune@gru"}
    assert select(graph, [])[1] == set(graph)

    # Whole studies first, then the experiments from the end of dvc.yaml, where the longest stand.
    ready = ["train@dense-1", "train@lstm_maxlen500-1", "tune@dense", "speed"]
    assert order(ready, list(graph)) == ["tune@dense", "speed", "train@lstm_maxlen500-1", "train@dense-1"]


def test_an_unknown_target_or_job_count_is_one_line(project: Path):
    wrong = run(["python", "-m", "pipeline.repro", "trian"], project, check=False)
    assert wrong.returncode == 2 and wrong.stderr.strip().splitlines() == [
        "error: no stage 'trian' in dvc.yaml; stages: confirm, download, evaluate, prepare, register, report, speed, "
        "train, tune (or one of their items, e.g. train@lstm-1)"]
    zero = run(["python", "-m", "pipeline.repro", "--jobs", "0"], project, check=False)
    assert zero.returncode == 2 and zero.stderr.strip() == "error: --jobs = 0: must be at least 1"
    word = run(["python", "-m", "pipeline.repro"], project, check=False, LAB_JOBS="two")
    assert word.returncode == 2 and word.stderr.strip() == (
        "error: LAB_JOBS = 'two': must be a whole number of stages at once, at least 1")


@pytest.mark.parametrize("jobs", ["1"])
def test_one_job_is_plain_dvc_repro_with_every_core(project: Path, jobs: str):
    # Nothing to run but download (no archive): it fails, and the runner says which stage and what did not run.
    result = run(["python", "-m", "pipeline.repro", "--jobs", jobs, "prepare"], project, check=False,
                 IMDB_ARCHIVE=str(project / "missing.tar.gz"))
    assert result.returncode == 1
    assert "== download: started on all cores" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == ("error: stage download failed (its output is above, prefixed "
                                                      "with its name); not run: prepare")
