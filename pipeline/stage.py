"""How every stage runs, fails and stops (each stage's ``__main__`` calls :func:`run`).

Bad input (:class:`UserError`), a full disk or a read-only folder: one clear line and exit 2.
Ctrl-C and SIGTERM: the stage unwinds, its MLflow runs end KILLED, exit 128 + the signal.
Also the helpers that keep those promises: renames no signal can split
(:func:`signals_deferred`), cleanup no second signal can cut short (:func:`unwinding`), and
the mark that the outputs are already written (:func:`outputs_written`)."""

from __future__ import annotations

import atexit
import errno
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# What the machine, not the input, refused: said in one line too, with what to do.
NO_SPACE = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


class UserError(Exception):
    """An input the user can fix (params, archive, URL, text): shown as one line, no traceback."""


def run(main: Callable[[], None], *, end_process: bool = False) -> None:
    """Call a stage's ``main()``; turn a UserError into ``error: ...`` on stderr and exit 2.

    A full disk, a file-size limit or a read-only folder, wherever it surfaces, is
    said in one line too (exit 2); the stages write their outputs all or none.

    SIGTERM (``kill``, a scheduler stopping the job) is handled like Ctrl-C: the
    stage unwinds, its MLflow runs end KILLED, its trial FAIL, and the exit code is
    128 + the signal number.

    ``end_process`` (a stage's ``__main__``): then end the process at once, see :func:`_end_process`.
    """
    if not end_process:
        _run(main)
        return
    try:
        _run(main)
    except SystemExit as exiting:
        _end_process(exiting.code)
    _end_process(0)


def _end_process(code: int | str | None) -> None:
    """Exit as the interpreter would (non-daemon threads joined, atexit handlers run: MLflow's, logging's,
    JAX's; output flushed), minus its teardown of every module and object, seconds with Keras, JAX and MLflow
    imported (docs/measurements.md). Only a stage's ``__main__`` may: nothing of the process is used after it."""
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    threading._shutdown()  # what the interpreter does first at exit: wait for the threads that are not daemons
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken pipe: nothing more can be said on it
    os._exit(code or 0)


def _run(main: Callable[[], None]) -> None:
    received = [signal.SIGINT]
    _written[0] = False

    def interrupt(signum, frame):
        received[0] = signal.Signals(signum)
        # TensorFlow can consume a KeyboardInterrupt raised while it runs (it turns a pending
        # signal into an error of its own and training goes on; seen once with SIGTERM): if the
        # stage still runs 5 s later, raise it again, every 5 s, until it has unwound.
        signal.setitimer(signal.ITIMER_REAL, 5.0, 5.0)
        again(signum, frame)

    def again(signum, frame):
        if _inside_locked_code(frame):  # raised as soon as that call is over, not in the middle of it
            signal.setitimer(signal.ITIMER_REAL, 0.05, 5.0)
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGALRM, again)
    try:
        try:
            main()
        finally:
            # The outcome is decided: no later signal may change it. A second SIGINT during the interpreter's
            # shutdown (seconds, with TensorFlow's threads) would kill the process: after a completed stage
            # DVC would discard its work, after an interrupted one it would report a death by SIGINT.
            signal.setitimer(signal.ITIMER_REAL, 0)
            for number in (signal.SIGINT, signal.SIGTERM):
                signal.signal(number, signal.SIG_IGN)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:
        reason = environment_problem(error)
        if reason is None:
            raise
        print(f"error: {reason}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        if _written[0]:
            print(f"error: interrupted ({received[0].name}) after this run had written its outputs; DVC recorded "
                  "nothing, so the next dvc repro runs the stage again", file=sys.stderr)
        else:
            print(f"error: interrupted ({received[0].name}); outputs were left as they were before this run",
                  file=sys.stderr)
        sys.exit(128 + received[0])


_written = [False]


def outputs_written() -> None:
    """Say that the stage's outputs are in place: an interrupt from here on (while it logs to MLflow,
    say) is reported as coming after them, not as having left the previous outputs."""
    _written[0] = True


# Code that holds a lock other threads or processes need next: an interrupt raised inside it can leave the
# lock held for good (an SQLite transaction left open blocks every later write to the store, this stage's own
# ending of its runs KILLED included; a module's import lock or a logging handler's lock hangs the next thread
# that takes it; both seen in tests). The interrupt waits until such a call is over (checked every 50 ms).
HOLDS_LOCKS = {"sqlalchemy", "sqlite3", "psycopg", "psycopg2", "pymysql", "MySQLdb",  # database transactions
               "importlib", "_frozen_importlib", "_frozen_importlib_external",  # module import locks
               "logging"}  # handler locks


def _inside_locked_code(frame) -> bool:
    """Whether the interrupted frame, or one of its callers, belongs to :data:`HOLDS_LOCKS`."""
    while frame is not None:
        if frame.f_globals.get("__name__", "").split(".")[0] in HOLDS_LOCKS:
            return True
        frame = frame.f_back
    return False


@contextmanager
def _signals_held(*, drop: bool) -> Iterator[None]:
    """SIGINT, SIGTERM and :func:`run`'s re-raise (SIGALRM) wait until the block is over; then the
    first one to arrive takes effect, or, with ``drop``, none does."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield
        return
    arrived: list[int] = []
    held = {s: signal.signal(s, lambda number, frame: arrived.append(number))
            for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    try:
        yield
    finally:
        for number, handler in held.items():
            signal.signal(number, handler)
        if arrived and not drop:
            signal.raise_signal(arrived[0])


def signals_deferred():
    """Run the block to its end: a Ctrl-C, SIGTERM or :func:`run`'s re-raise arriving meanwhile takes
    effect when it is over. For the renames that put outputs in place, all or none."""
    return _signals_held(drop=False)


def unwinding():
    """Cleanup after a Ctrl-C or SIGTERM (ending MLflow runs KILLED) that no further signal can cut short.

    The stage has caught its KeyboardInterrupt, so :func:`run` stops raising it again every 5 s, and
    a SIGINT or SIGTERM arriving meanwhile is dropped: the stage is stopping anyway. A second
    KeyboardInterrupt in the middle of ``mlflow.end_run`` would leave the run to ``start_run``'s
    exit, which ends it FAILED, not KILLED.
    """
    signal.setitimer(signal.ITIMER_REAL, 0)
    return _signals_held(drop=True)


def environment_problem(error: BaseException) -> str | None:
    """One line for a full disk, a file-size limit or a read-only folder, wherever it surfaced; else None."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = str(error)
        if isinstance(error, OSError) and error.errno in NO_SPACE | NOT_WRITABLE:
            where = f"cannot write {error.filename}" if error.filename else "cannot write"
            if error.errno in NO_SPACE:
                return (f"{where}: {error.strerror} (a full disk or a file-size limit); free space and rerun: "
                        "outputs were left as they were before this run")
            return (f"{where}: {error.strerror}; the project folder and its stores must be writable: "
                    "outputs were left as they were before this run")
        if isinstance(error, OSError) and re.fullmatch(r"\d+ requested and \d+ written", text):
            return ("cannot write: a short write (a full disk or a file-size limit); free space and rerun: "
                    "outputs were left as they were before this run")  # numpy's tofile() says only this
        database = re.search(r"database or disk is full|attempt to write a readonly database|disk I/O error", text)
        if database:
            return (f"the database refused a write ({database[0]}); free space, make the project and its stores "
                    "writable, and rerun: outputs were left as they were before this run")
        error = error.__cause__ or error.__context__
    return None
