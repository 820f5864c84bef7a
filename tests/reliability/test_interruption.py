"""Interrupting prepare (Ctrl-C, or kill -9) never leaves a half-written data/prepared/; the next
`dvc repro` completes and gives the same files as an uninterrupted run."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import SHARED_ARCHIVE, command_env, run
from tests.reliability.test_bad_params import tree_digest

pytestmark = pytest.mark.skipif(not SHARED_ARCHIVE.is_file(), reason="needs the labelled archive (IMDB_ARCHIVE)")


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_prepare_interrupted_mid_way_leaves_nothing_half_written(project: Path, sent):
    run(["dvc", "repro", "download"], project, IMDB_ARCHIVE=str(SHARED_ARCHIVE))
    worker = subprocess.Popen(["python", "-m", "pipeline.prepare"], cwd=project, env=command_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Wait until it is tokenising (its progress bar is on stderr), well before it writes.
    seen = ""
    while "tokenising" not in seen:
        line = worker.stderr.readline()
        if not line:
            pytest.fail(f"prepare ended before it was interrupted:\n{seen}")
        seen += line
    time.sleep(1)
    worker.send_signal(sent)
    rest = worker.communicate(timeout=120)[1]
    if sent == signal.SIGINT:
        assert worker.returncode == 130
        assert "error: interrupted (SIGINT); outputs were left as they were before this run\n" in rest
        assert "Traceback" not in rest
    else:
        assert worker.returncode == -signal.SIGKILL
    assert not (project / "data/prepared").exists()  # never half-written: absent, as before the run
    run(["dvc", "repro", "prepare"], project, IMDB_ARCHIVE=str(SHARED_ARCHIVE))
    assert not (project / "data/prepared.partial").exists()
    first = tree_digest(project / "data/prepared")
    run(["dvc", "repro", "-f", "prepare"], project, IMDB_ARCHIVE=str(SHARED_ARCHIVE))
    assert tree_digest(project / "data/prepared") == first  # the same files as an uninterrupted rerun
