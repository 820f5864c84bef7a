"""Throwaway servers on 127.0.0.1 for the tests and benchmarks that need them: PostgreSQL from the
Debian package, and an MLflow tracking server backed by it.

The PostgreSQL superuser ``lab`` has a random password (``PASSWORD``) so the tests can
check that it never leaks. Without the package the callers skip, except under
``LAB_REQUIRE_POSTGRES=1`` (``.ci/run``), where they fail.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PASSWORD = f"pg-{secrets.token_hex(8)}"  # random: no file of the project can contain it by chance


def _as_postgres(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root: use the package's own system user.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def installed() -> bool:
    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


def server(port: int) -> Iterator[str]:
    """Start a server on ``port``; yield its base URL (``postgresql://lab:<password>@127.0.0.1:<port>``)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        message = "PostgreSQL server not installed (Debian: apt-get install postgresql)"
        if os.environ.get("LAB_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    bin_dir = Path(found[-1]).parent
    home = Path(tempfile.mkdtemp(prefix="lab-postgres-"))
    home.chmod(0o755)
    (home / "password").write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
        shutil.chown(home / "password", "postgres", "postgres")
    data = home / "data"
    subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "lab", "-E", "UTF8",
                                 "--auth=scram-sha-256", f"--pwfile={home / 'password'}"]),
                   check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={home}"
    subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                                 str(home / "server.log"), "-w", "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql://lab:{PASSWORD}@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                       capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def create_database(base_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(f"{base_url}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{base_url}/{name}"


@contextmanager
def mlflow_server(backend: str, artifacts: Path, port: int, log: Path | None = None) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 with ``backend`` as its store and ``artifacts`` as the artifact
    destination (proxied: clients upload through the server); yield its URL, stop it with its workers."""
    command = [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", backend,
               "--artifacts-destination", artifacts.as_uri(), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "2"]
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(f"mlflow server exited {process.returncode}; see {log}") from None
                time.sleep(0.5)
        else:
            raise RuntimeError("mlflow server did not answer within 120 s")
        yield url
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=60)
        if log:
            out.close()
