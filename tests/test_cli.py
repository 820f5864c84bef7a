"""Every stage and tool answers --help with its usage, exit 0 and no side effects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.lab import STAGES
from tests.conftest import command_env


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_stage_answers_help_and_touches_nothing(tmp_path: Path, stage: str):
    # An empty folder as the working directory: a stage that ran would fail or write into it.
    result = subprocess.run([sys.executable, "-m", f"pipeline.{stage}", "--help"], cwd=tmp_path, env=command_env(),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:") and "--help" in result.stdout
    assert listing(tmp_path) == set()


def test_imdb_lab_lists_the_stages_runs_one_and_refuses_an_unknown_one(tmp_path: Path):
    train = subprocess.run(["imdb-lab", "train", "--help"], cwd=tmp_path, env=command_env(), capture_output=True,
                           text=True)
    assert train.returncode == 0 and train.stdout.startswith("usage: imdb-lab train") and "--seed" in train.stdout
    assert listing(tmp_path) == set()
    listed = subprocess.run(["imdb-lab", "--help"], cwd=tmp_path, env=command_env(), capture_output=True, text=True)
    assert listed.returncode == 0 and all(stage in listed.stdout for stage in STAGES)
    wrong = subprocess.run(["imdb-lab", "trian"], cwd=tmp_path, env=command_env(), capture_output=True, text=True)
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == ("error: imdb-lab: unknown stage 'trian'; must be one of download, prepare, "
                                    "train, tune, confirm, speed, evaluate, register, report, predict, repro")
    assert subprocess.run(["imdb-predict", "--help"], cwd=tmp_path, env=command_env(),
                          capture_output=True, text=True).stdout.startswith("usage: imdb-lab predict")


@pytest.mark.parametrize("backend", ["foo", "torch"])
def test_an_unsupported_keras_backend_is_one_line_and_exit_2_before_anything_is_written(tmp_path: Path, backend: str):
    result = subprocess.run([sys.executable, "-m", "pipeline.train", "--experiment", "lstm", "--seed", "1"],
                            cwd=tmp_path, env=command_env() | {"KERAS_BACKEND": backend}, capture_output=True,
                            text=True)
    assert result.returncode == 2 and list(tmp_path.iterdir()) == []
    assert result.stderr.startswith(f"error: KERAS_BACKEND={backend}: must be jax or tensorflow (installed here: ")
    assert len(result.stderr.splitlines()) == 1
