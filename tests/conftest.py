"""Shared fixtures: the small real-review archive, and a throwaway git copy of the project."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import pipeline  # noqa: F401  (picks the Keras backend, pipeline/__init__.py, before a test imports Keras)

ROOT = Path(__file__).resolve().parents[1]
SMALL_ARCHIVE = ROOT / "tests" / "data" / "aclImdb_small.tar.gz"  # 40 real reviews per split/class
SHARED_ARCHIVE = Path(
    os.environ.get("IMDB_ARCHIVE") or ROOT.parent / "shared" / "data" / "imdb" / "aclImdb_v1_labelled.tar.gz"
)
# A few more than the archive layout needs: git identity for the throwaway repositories.
# The modules that take minutes (measured: `pytest --durations=0`), longest first. pytest-xdist's
# --dist loadfile hands whole modules to the two workers in collection order, so starting with the
# longest lets both workers end together instead of one running a long module alone at the end.
LONGEST_FIRST = ["reliability/test_interruption.py", "test_pipeline.py", "test_tune.py", "test_serving.py",
                 "test_train.py", "test_confirm.py", "reliability/test_environment.py", "test_scale_out.py",
                 "reliability/test_concurrency.py", "test_evaluate.py", "test_prepare.py"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.path.relative_to(ROOT / "tests").as_posix()
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a module is kept


GIT_ENV = {
    "GIT_AUTHOR_NAME": "tests", "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "tests", "GIT_COMMITTER_EMAIL": "tests@example.invalid",
}


def command_env(**extra: str) -> dict[str, str]:
    """Environment for running the project's commands: this interpreter's bin first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("IMDB_ARCHIVE", "MLFLOW_TRACKING_URI", "OPTUNA_STORAGE")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # MLflow 3's server also starts a job runner and three huey consumers (its GenAI jobs, unused here):
    # 4 processes importing mlflow for every `mlflow ui` / `mlflow server` the tests start.
    env |= GIT_ENV | {"DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1",
                      "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"} | extra
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_hosts(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    import ipaddress

    hosts = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # the kernel prints each 32-bit word in host (little-endian) order
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                hosts.add(str(ipaddress.ip_address(raw)))
    return hosts


def run(args: list[str], cwd: Path, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=command_env(**env), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def set_params(project: Path, **values) -> None:
    """Set dotted keys in the project's params.yaml, e.g. set_params(p, **{"prepare.limit": 5})."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in values.items():
        *parents, last = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        node[last] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository holding the project's current files (tracked and new, not ignored)."""
    return make_project(tmp_path)


def make_project(tmp_path: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    target = tmp_path / "project"
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    run(["git", "init", "-q"], target)
    run(["git", "add", "-A"], target)
    run(["git", "commit", "-q", "-m", "project under test"], target)
    return target


TINY_SPACE = {"maxlen": {"low": 20, "high": 60, "log": False}, "units": {"low": 4, "high": 8, "log": False},
         "epochs": {"low": 3, "high": 4, "log": False}}


@pytest.fixture
def tiny(project: Path) -> Path:
    """The project with prepare run on 20 reviews per class and split, and a small lstm and study (tune tests)."""
    set_params(project, **{
        "prepare.limit": 20, "prepare.num_words": 300,
        # The default lstm experiment (enqueued as trial 0) trains one epoch: never pruned.
        "train.experiments.lstm.epochs": 1, "train.experiments.lstm.maxlen": 40, "train.experiments.lstm.units": 4,
        "tune.n_trials": 4, "tune.timeout": 0, "tune.warmup_epochs": 1, "tune.space": TINY_SPACE,
    })
    run(["dvc", "repro", "prepare"], project, IMDB_ARCHIVE=str(SMALL_ARCHIVE))
    return project
