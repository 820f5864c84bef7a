"""A read-only project folder and a full disk, for the stages that write: one line saying so, exit 2,
and every file of the project (outputs, mlflow.db) exactly as before.

Read-only: the project is bind-mounted read-only onto itself in a private mount namespace
(`unshare -m`, which needs CAP_SYS_ADMIN; skipped where that is missing). Full disk: a file-size
limit (`ulimit -f 16`, 16 KiB), under which every write past 16 KiB fails with EFBIG as on a full
disk (Python ignores SIGXFSZ).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SMALL_ARCHIVE, command_env, make_project, run, set_params
from tests.reliability.test_bad_params import tree_digest

STAGES = {
    "download": ["python", "-m", "pipeline.download"],
    "prepare": ["python", "-m", "pipeline.prepare"],
    "train": ["python", "-m", "pipeline.train", "--experiment", "dense", "--seed", "1"],
    "report": ["python", "-m", "pipeline.report"],
}
READ_ONLY = ('mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && cd "$0" && exec "$@"',)
SMALL_FILES = ('ulimit -f 16 && exec "$@"',)


def _can_remount() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind /tmp /tmp && mount -o remount,ro,bind /tmp'],
                           capture_output=True)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A small project with every input those stages read and outputs for them to keep: data, a model, a report."""
    project = make_project(tmp_path_factory.mktemp("environment"))
    set_params(project, **{"prepare.limit": 20, "prepare.num_words": 300, "train.experiments.dense.epochs": 1,
                           "train.experiments.dense.maxlen": 60})
    run(["dvc", "repro", "train@dense-1"], project, IMDB_ARCHIVE=str(SMALL_ARCHIVE))
    run(STAGES["report"], project)
    return project


@pytest.mark.parametrize("stage", list(STAGES))
@pytest.mark.parametrize("condition", ["read-only", "full-disk"])
def test_a_stage_that_cannot_write_says_so_and_changes_nothing(built: Path, stage: str, condition: str):
    if condition == "read-only":
        if not _can_remount():
            if os.environ.get("LAB_REQUIRE_REMOUNT") == "1":  # .ci/run: CI machines have it, so it must run
                pytest.fail("LAB_REQUIRE_REMOUNT=1 but unshare -m and mount are not usable (CAP_SYS_ADMIN)")
            pytest.skip("needs unshare -m and mount (CAP_SYS_ADMIN); LAB_REQUIRE_REMOUNT=1 makes this a failure")
        wrapper = ["unshare", "-m", "sh", "-c", *READ_ONLY, str(built)]
        expected = "Read-only file system; the project folder and its stores must be writable"
    else:
        wrapper = ["bash", "-c", *SMALL_FILES, "bash"]
        expected = "(a full disk or a file-size limit); free space and rerun"
    before = tree_digest(built)
    result = subprocess.run([*wrapper, *STAGES[stage]], cwd=built, capture_output=True, text=True,
                            env=command_env(IMDB_ARCHIVE=str(SMALL_ARCHIVE)))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert lines == result.stderr.strip().splitlines()[-1:], result.stderr  # one error line, the last
    assert "Traceback" not in result.stderr
    assert expected in lines[0] or "the database refused a write" in lines[0], lines[0]
    assert tree_digest(built) == before  # outputs, stores and params: byte for byte as before
