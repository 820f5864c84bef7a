"""./lab.sh's environment handling, with a stand-in Python that records what it is asked to do
(the real install is what CI's fresh clone does)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT

STUB = """#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && echo "venv created" >> "$LOG"; exit 0
fi
echo "python $*" >> "$LOG"
"""


def setup(folder: Path, extra: str) -> subprocess.CompletedProcess:
    log = folder / "log.txt"
    return subprocess.run(["./lab.sh", "setup"], cwd=folder, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": str(folder / "stub-python"), "LAB_EXTRA": extra,
                               "LOG": str(log)})


def test_another_extra_rebuilds_the_environment_instead_of_installing_over_it(tmp_path: Path):
    for name in ("lab.sh", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "stub-python").write_text(STUB)
    (tmp_path / "stub-python").chmod(0o755)

    assert setup(tmp_path, "cpu").returncode == 0
    installed = (tmp_path / ".venv/.lab-installed").read_text()
    assert installed.startswith("cpu ") and "[cpu,dev]" in (tmp_path / "log.txt").read_text()
    (tmp_path / ".venv/left-from-cpu").write_text("the CPU build's files")

    # The same extra again: nothing to do.
    (tmp_path / "log.txt").unlink()
    assert setup(tmp_path, "cpu").returncode == 0 and not (tmp_path / "log.txt").exists()

    # Switching to gpu starts from an empty .venv: nothing of the CPU build is left under the CUDA one.
    result = setup(tmp_path, "gpu")
    assert result.returncode == 0 and "LAB_EXTRA changed (cpu -> gpu): rebuilding .venv" in result.stderr
    log = (tmp_path / "log.txt").read_text().splitlines()
    assert log[0] == "venv created" and "[gpu,dev]" in log[1]
    assert not (tmp_path / ".venv/left-from-cpu").exists()
    assert (tmp_path / ".venv/.lab-installed").read_text().startswith("gpu ")


def test_an_unknown_extra_is_one_line_naming_the_allowed_ones(tmp_path: Path):
    for name in ("lab.sh", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "stub-python").write_text(STUB)
    (tmp_path / "stub-python").chmod(0o755)
    result = setup(tmp_path, "cuda")
    assert result.returncode == 2 and not (tmp_path / ".venv").exists()
    assert result.stderr == "error: LAB_EXTRA=cuda: must be cpu, gpu or gpu-tensorflow\n"
    assert setup(tmp_path, "gpu-tensorflow").returncode == 0
    assert "[gpu-tensorflow,dev]" in (tmp_path / "log.txt").read_text()
