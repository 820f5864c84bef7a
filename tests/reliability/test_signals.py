"""The signal rules inside one process, where test_interruption.py cannot aim: a Ctrl-C or SIGTERM
landing between two renames, inside ``mlflow.end_run("KILLED")``, inside a write to the MLflow store, or
after the outputs were written.
Each case raises the signal itself at the exact point, so none depends on timing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest

from pipeline import paths, prepare, stage, tracking
from tests.conftest import ROOT


@pytest.fixture(autouse=True)
def python_handlers():
    """Python's own SIGINT handler (a worker process may have another) and no timer left behind."""
    held = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    for number, handler in held.items():
        signal.signal(number, handler)


def test_an_interrupt_between_two_renames_waits_until_every_output_is_in_place(tmp_path: Path, monkeypatch):
    outputs = {tmp_path / "a.json": "new a", tmp_path / "b.json": "new b", tmp_path / "c.csv": "new c"}
    for path in outputs:
        path.write_text("old")
    real = os.replace

    def replace_then_ctrl_c(source, target):
        real(source, target)
        signal.raise_signal(signal.SIGINT)  # lands after the first rename, before the others

    monkeypatch.setattr(paths.os, "replace", replace_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        paths.write_outputs(outputs)
    assert {path: path.read_text() for path in outputs} == outputs  # all new, none old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json", "c.csv"]  # no temporaries


def test_prepared_data_is_swapped_in_whole_when_interrupted_between_its_two_renames(tmp_path: Path, monkeypatch):
    target, staging = tmp_path / "prepared", tmp_path / "prepared.partial"
    for folder, text in ((target, "old"), (staging, "new")):
        folder.mkdir()
        (folder / "stats.json").write_text(text)
    real = Path.rename

    def rename_then_ctrl_c(self, destination):
        moved = real(self, destination)
        signal.raise_signal(signal.SIGINT)  # after prepared/ became prepared.old/, before the new one moved in
        return moved

    monkeypatch.setattr(Path, "rename", rename_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        prepare._swap_in(staging, target)
    assert (target / "stats.json").read_text() == "new"
    assert not staging.exists()


@pytest.fixture
def store(tmp_path: Path):
    """A real SQLite MLflow store for this process, forgotten afterwards."""
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("signals")
    yield
    mlflow.set_tracking_uri(None)
    mlflow.tracking.fluent._active_experiment_id = None


@pytest.mark.usefixtures("store")
def test_ending_the_run_killed_is_not_cut_short_by_a_second_signal(monkeypatch):
    """A second Ctrl-C, or stage.run's 5 s re-raise, inside end_run("KILLED") used to leave the run to
    start_run's exit, which ends it FAILED (or RUNNING)."""
    real = mlflow.end_run

    def end_run_interrupted(status="FINISHED"):
        signal.raise_signal(signal.SIGINT)  # a second Ctrl-C while the run is being ended
        real(status)

    monkeypatch.setattr(mlflow, "end_run", end_run_interrupted)
    with pytest.raises(KeyboardInterrupt), tracking.started_run(run_name="interrupted", log_system_metrics=False):
        # stage.run's re-raise, as armed by the first signal (once here): it would land inside the cleanup
        signal.signal(signal.SIGALRM, lambda number, frame: (_ for _ in ()).throw(KeyboardInterrupt()))
        signal.setitimer(signal.ITIMER_REAL, 0.02)
        raise KeyboardInterrupt
    try:
        time.sleep(0.05)  # the timer would have fired by now, had it not been stopped
    except KeyboardInterrupt:
        pytest.fail("stage.run's re-raise still fired after the stage had begun unwinding")
    monkeypatch.undo()
    runs = mlflow.search_runs(experiment_names=["signals"], output_format="list")
    assert [run.info.status for run in runs] == ["KILLED"]


@pytest.mark.parametrize(("written", "message"), [
    (False, "error: interrupted (SIGINT); outputs were left as they were before this run"),
    (True, "error: interrupted (SIGINT) after this run had written its outputs; DVC recorded nothing, so the "
           "next dvc repro runs the stage again"),
])
def test_an_interrupt_says_whether_the_outputs_were_already_replaced(capsys, written: bool, message: str):
    def main():
        if written:
            stage.outputs_written()  # as train and evaluate do before they log to MLflow
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exited:
        stage.run(main)
    assert exited.value.code == 130
    assert capsys.readouterr().err.strip() == message


def test_a_signal_after_the_work_is_done_does_not_throw_it_away():
    """A stage whose main() returned has written its outputs and ended its MLflow run FINISHED; a
    Ctrl-C while the interpreter shuts down (seconds with TensorFlow) used to kill it (exit -2), and DVC
    then discarded the completed stage. A CI run of the parallel runner met exactly this."""
    code = ("import os, signal, time; from pipeline.stage import run; run(lambda: print('done', flush=True)); "
            "os.kill(os.getpid(), signal.SIGINT); os.kill(os.getpid(), signal.SIGTERM); time.sleep(0.2)")
    finished = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert (finished.returncode, finished.stdout, finished.stderr) == (0, "done\n", "")


# A stage logging metrics to a SQLite store; SQLAlchemy's own event hook raises Ctrl-C right after the second
# metric's INSERT, while that write's transaction is open (the statement after it: its latest-metric SELECT).
# Between the writes it trains (sleeps): a stage that only wrote would put off the interrupt to its end.
IN_A_WRITE = textwrap.dedent("""\
    import os, signal, sys, time
    import mlflow, sqlalchemy
    from pathlib import Path
    from pipeline import stage, tracking
    inserts = []
    def hook(connection, cursor, statement, *rest):
        if statement.startswith("INSERT INTO metrics"):
            inserts.append(statement)
        elif len(inserts) == 2:
            inserts.append(statement)
            os.kill(os.getpid(), signal.SIGINT)
    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "after_cursor_execute", hook)  # before the engine exists
    def main():
        tracking.start(Path.cwd(), None)
        with tracking.started_run(run_name="interrupted", log_system_metrics=False):
            for step in range(100):
                time.sleep(0.05)  # the epoch: the interrupt lands here, once the write is over
                mlflow.log_metric("loss", 1 / (step + 1), step=step)
            print("not interrupted")
    stage.run(main)
    """)


def test_an_interrupt_inside_a_store_write_waits_until_the_write_is_over(tmp_path: Path):
    """Raised in the middle of SQLAlchemy's work, the KeyboardInterrupt left the write's transaction open and
    the SQLite lock held: ending the run KILLED then waited on that lock, 30 tries of 20 s each (the
    parallel runner's CI test met it as a stage that never stopped). It now waits until the write is over."""
    try:
        stopped = subprocess.run([sys.executable, "-c", IN_A_WRITE], cwd=tmp_path, capture_output=True, text=True,
                                 timeout=180, env=os.environ | {"PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"the interrupted stage hung on its own store lock:\n{(hung.stderr or b'').decode()}")
    assert stopped.returncode == 130, stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1] == ("error: interrupted (SIGINT); outputs were left as they "
                                                       "were before this run")
    assert "not interrupted" not in stopped.stdout
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    finally:
        mlflow.set_tracking_uri(None)
    assert [(run.info.run_name, run.info.status) for run in runs] == [("interrupted", "KILLED")]
