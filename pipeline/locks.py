"""Locks shared by every process that uses one store (an MLflow or Optuna database, a journal file).

The kind follows the store's URL: an flock on ``<file>.lab.lock`` beside an SQLite
database or a journal file (processes on one host, or a file system with working
locks); an advisory lock on PostgreSQL and GET_LOCK on MySQL (processes on any host);
none for other stores. Two uses: creating a store's tables, which breaks when two
processes do it at once, and handing out a study's trial slots (pipeline.studies).
"""

from __future__ import annotations

import fcntl
import zlib
from pathlib import Path


class StoreLock:
    def __init__(self, url: str, name: str, engine=None):
        self.name, self.key = name, zlib.crc32(name.encode())
        self.kind, self.target, self.held = "none", None, None
        if url.startswith("journal:"):
            self.kind, self.target = "file", Path(url.removeprefix("journal:") + ".lab.lock")
        elif url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            self.kind, self.target = "file", Path(url.removeprefix("sqlite:///").split("?")[0] + ".lab.lock")
        elif url.startswith(("postgresql", "mysql")):
            import sqlalchemy

            self.kind = url.split(":", 1)[0].split("+")[0]
            self.target = engine or sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)

    def acquire(self) -> None:
        if self.held is not None:
            return
        if self.kind == "file":
            held = open(self.target, "a")  # noqa: SIM115 (held until release)
            fcntl.flock(held, fcntl.LOCK_EX)
            self.held = held
        elif self.kind in ("postgresql", "mysql"):
            from sqlalchemy import text

            held = self.target.connect()
            if self.kind == "postgresql":
                held.execute(text("SELECT pg_advisory_lock(:key)"), {"key": self.key})
            else:
                held.execute(text("SELECT GET_LOCK(:name, -1)"), {"name": self.name})
            self.held = held

    def release(self) -> None:
        """Let the next process in; safe to call when not held."""
        held, self.held = self.held, None
        if held is None:
            return
        if self.kind == "file":
            fcntl.flock(held, fcntl.LOCK_UN)
        else:
            from sqlalchemy import text

            if self.kind == "postgresql":
                held.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            else:
                held.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": self.name})
        held.close()

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
