"""pipeline.repro and the signals it passes on, in a two-stage DVC project of its own (real git, real DVC):
the runner waits for every stage's own process, whatever shell DVC runs it with, and a second signal kills
the stages that do not stop. The pipeline's own stages interrupted through it: test_interruption."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, command_env, run

# A stage that trains until it is stopped. "slow": on SIGINT it takes a second to unwind, then writes
# <name>.stopped and exits 130. "stuck": it ignores SIGINT (a stage hanging while it unwinds).
STAGE = textwrap.dedent("""\
    import os, signal, sys, time
    name, mode = sys.argv[1], os.environ["STAGE_MODE"]
    def stop(number, frame):
        if mode == "slow":
            time.sleep(1)
            open(name + ".stopped", "w").write("unwound")
            sys.exit(130)
    signal.signal(signal.SIGINT, stop)
    print("training", flush=True)
    time.sleep(600)
    """)


@pytest.fixture
def two_stages(tmp_path: Path) -> Path:
    (tmp_path / "stage.py").write_text(STAGE)
    (tmp_path / "dvc.yaml").write_text("stages:\n" + "".join(
        f"  {name}:\n    cmd: python stage.py {name}\n    deps: [stage.py]\n    outs: [{name}.txt]\n"
        for name in ("first", "second")))
    run(["git", "init", "-q"], tmp_path)
    run(["dvc", "init", "-q"], tmp_path)
    run(["git", "add", "-A"], tmp_path)
    run(["git", "commit", "-qm", "two stages"], tmp_path)
    return tmp_path


def start_runner(project: Path, mode: str, **env: str) -> tuple[subprocess.Popen, str]:
    """The runner with both stages training (its output so far)."""
    environment = command_env(STAGE_MODE=mode, PYTHONPATH=str(ROOT)) | env
    runner = subprocess.Popen([sys.executable, "-m", "pipeline.repro", "--jobs", "2"], cwd=project, env=environment,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    seen = ""
    for line in runner.stdout:
        seen += line
        if seen.count("| training") == 2:
            return runner, seen
    pytest.fail(f"the two stages never trained side by side:\n{seen}")


def left_behind(project: Path, program: str = "") -> list[str]:
    """Processes running in the project whose command line names stage.py: the stages and, where the
    shell DVC uses does not exec them (dash), their shells; with program, only those whose name starts so."""
    found = subprocess.run(["pgrep", "-f", "stage.py"], capture_output=True, text=True).stdout.split()
    mine = []
    for pid in found:
        try:
            if (Path(f"/proc/{pid}/cwd").resolve(strict=True) == project.resolve()
                    and Path(f"/proc/{pid}/comm").read_text().startswith(program)):
                mine.append(pid)
        except OSError:
            pass  # gone since pgrep listed it
    return mine


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_the_runner_waits_for_each_stage_to_unwind_whatever_shell_dvc_uses(two_stages: Path, shell: str):
    """DVC runs a stage as $SHELL -c (/bin/sh when SHELL is unset). Debian's /bin/sh, dash, does not exec
    the command and dies of the SIGINT at once, so DVC reports the stage gone (exit -2) while it still
    unwinds: the runner waits for the stage itself."""
    runner, _ = start_runner(two_stages, "slow", SHELL=shell)
    runner.send_signal(signal.SIGTERM)
    rest = runner.communicate(timeout=120)[0]
    assert runner.returncode == 128 + signal.SIGTERM, rest
    assert rest.strip().splitlines()[-1] == ("error: interrupted (SIGTERM); the stages that were running were "
                                             "stopped and DVC recorded none of them")
    assert {p.name for p in two_stages.glob("*.stopped")} == {"first.stopped", "second.stopped"}, rest
    assert not left_behind(two_stages) and not list(two_stages.glob("*.txt"))


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_a_second_signal_kills_the_stages_that_do_not_stop(two_stages: Path, shell: str):
    runner, _ = start_runner(two_stages, "stuck", SHELL=shell)
    runner.send_signal(signal.SIGTERM)
    try:
        runner.communicate(timeout=3)
        pytest.fail("the runner exited while its stages still ran")
    except subprocess.TimeoutExpired:
        pass  # it waits for them: they ignore the SIGINT it passed on
    assert len(left_behind(two_stages, "python")) == 2  # (with SHELL unset DVC's /bin/sh, dash, is beside each)
    runner.send_signal(signal.SIGINT)
    rest = runner.communicate(timeout=60)[0]
    assert runner.returncode == 128 + signal.SIGTERM, rest  # the first signal's
    assert rest.strip().splitlines()[-1] == (
        "error: interrupted (SIGTERM); the stages that were running were killed at the second signal (their "
        "MLflow runs are marked KILLED and their trials failed by the next run) and DVC recorded none of them")
    assert not left_behind(two_stages) and not (two_stages / "dvc.lock").exists()
