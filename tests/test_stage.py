"""How a stage's process ends (pipeline.stage.run with end_process, as every stage's __main__ calls it): with
the exit code the stage decided, after what the interpreter's own exit runs (threads that are not daemons,
atexit handlers, buffered output), but without its teardown of every module and object (seconds per stage)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

STAGE = textwrap.dedent("""\
    import atexit, sys, threading, time
    from pathlib import Path
    from pipeline.stage import UserError, run

    class Teardown:  # collected only by the interpreter's teardown of this module
        def __del__(self):
            Path("teardown").write_text("ran")

    kept = Teardown()
    atexit.register(lambda: Path("atexit").write_text("ran"))

    def late_write():  # a thread that is not a daemon still finishes its work
        time.sleep(0.5)
        Path("thread").write_text("ran")

    def main():
        threading.Thread(target=late_write).start()
        sys.stdout.write("buffered, never flushed by the stage")
        outcome = sys.argv[1]
        if outcome == "bad input":
            raise UserError("params.yaml: x = 1: must be 2")
        if outcome == "interrupted":
            raise KeyboardInterrupt
        if outcome == "exit 3":
            sys.exit(3)

    run(main, end_process=True)
    print("never reached")
    """)


@pytest.mark.parametrize(("outcome", "code", "error"), [
    ("done", 0, ""),
    ("bad input", 2, "error: params.yaml: x = 1: must be 2\n"),
    ("interrupted", 130, "error: interrupted (SIGINT); outputs were left as they were before this run\n"),
    ("exit 3", 3, ""),
])
def test_a_stage_process_ends_with_its_code_after_threads_and_atexit_but_skips_the_teardown(
        tmp_path: Path, outcome: str, code: int, error: str):
    (tmp_path / "stage.py").write_text(STAGE)
    ended = subprocess.run([sys.executable, "stage.py", outcome], cwd=tmp_path, capture_output=True, text=True,
                           env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert (ended.returncode, ended.stdout, ended.stderr) == (code, "buffered, never flushed by the stage", error)
    assert (tmp_path / "thread").read_text() == (tmp_path / "atexit").read_text() == "ran"
    assert not (tmp_path / "teardown").exists()  # the interpreter's own exit would have collected it


def test_run_without_end_process_returns_and_raises_as_before(capsys):
    from pipeline.stage import UserError, run

    run(lambda: None)  # returns: the caller goes on
    with pytest.raises(SystemExit) as exited:
        run(lambda: (_ for _ in ()).throw(UserError("no")))
    assert exited.value.code == 2 and capsys.readouterr().err == "error: no\n"
