"""The bad-input matrix for the archive: each broken archive given as IMDB_ARCHIVE stops the download
stage with exit 2 and one line naming the file and the problem, and leaves the project as it was."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.conftest import SMALL_ARCHIVE, run
from tests.reliability.test_bad_params import tree_digest
from tests.test_archive import layout, make_archive


def build(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.tar.gz"
    if kind == "missing":
        return path
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "not-gzip":
        path.write_bytes(b"PK\x03\x04 a zip file, not a gzip tar")
    elif kind == "gzip-not-tar":
        import gzip

        path.write_bytes(gzip.compress(b"plain text, not a tar archive" * 100))
    elif kind == "truncated":
        path.write_bytes(SMALL_ARCHIVE.read_bytes()[:20_000])
    elif kind == "no-reviews":
        make_archive(path, {"aclImdb/README": b"no reviews here"})
    elif kind == "missing-class-folder":
        make_archive(path, {k: v for k, v in layout().items() if "/test/neg/" not in k})
    elif kind == "dot-dot":
        make_archive(path, layout() | {"aclImdb/train/../../evil.txt": b"x"})
    elif kind == "absolute":
        make_archive(path, layout() | {"/tmp/evil.txt": b"x"})
    elif kind == "symlink":
        make_archive(path, layout(), links={"aclImdb/train/pos/7_9.txt": "/etc/passwd"})
    elif kind == "hardlink":
        make_archive(path, layout())
        with tarfile.open(path, "r:gz") as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
        with tarfile.open(path, "w:gz") as tar:
            for member, data in members:
                tar.addfile(member, io.BytesIO(data))
            link = tarfile.TarInfo("aclImdb/train/pos/7_9.txt")
            link.type, link.linkname = tarfile.LNKTYPE, members[0][0].name
            tar.addfile(link)
    elif kind == "misnamed-review":
        make_archive(path, layout() | {"aclImdb/train/neg/review.txt": b"x"})
    elif kind == "wrong-rating":
        make_archive(path, layout() | {"aclImdb/test/neg/9_8.txt": b"x"})
    elif kind == "duplicate-id":
        twins = {f"aclImdb/{split}/{polarity}/0_{rating}.txt": b"x" for split in ("train", "test")
                 for polarity, rating in (("pos", 9), ("neg", 1))}
        make_archive(path, layout() | twins)
    elif kind == "non-utf8":
        make_archive(path, layout() | {"aclImdb/train/pos/0_8.txt": "caf\u00e9 latin-1".encode("latin-1")})
    elif kind == "100mb-member":
        with tarfile.open(path, "w:gz", compresslevel=1) as tar:
            for name, data in layout().items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            huge = tarfile.TarInfo("aclImdb/test/pos/99_10.txt")
            huge.size = 100 * 2**20
            tar.addfile(huge, _Zeros(huge.size))
    return path


class _Zeros(io.RawIOBase):
    """A file of ``size`` zero bytes that is never held in memory at once."""

    def __init__(self, size: int):
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


@pytest.mark.parametrize(("kind", "message"), [
    ("missing", "no such file; point it at aclImdb_v1.tar.gz"),
    ("empty", "not a readable gzip tar archive"),
    ("not-gzip", "not a readable gzip tar archive"),
    ("gzip-not-tar", "not a readable gzip tar archive"),
    ("truncated", "not a readable gzip tar archive"),
    ("no-reviews", "same non-zero number of reviews"),
    ("missing-class-folder", "test/neg: 0"),
    ("dot-dot", "unsafe member name 'aclImdb/train/../../evil.txt'"),
    ("absolute", "unsafe member name '/tmp/evil.txt'"),
    ("symlink", "member 'aclImdb/train/pos/7_9.txt' is a link"),
    ("hardlink", "member 'aclImdb/train/pos/7_9.txt' is a link"),
    ("misnamed-review", "does not follow the layout <id>_<rating>.txt"),
    ("wrong-rating", "has rating 8; neg reviews are rated 1-4"),
    ("duplicate-id", "review id 0 appears twice in train/pos"),
    ("non-utf8", "member 'aclImdb/train/pos/0_8.txt' is not UTF-8 text (byte 0xe9 at offset 3)"),
    ("100mb-member", "member 'aclImdb/test/pos/99_10.txt' is 104,857,600 bytes; a review must be at most 1,048,576"),
])
def test_a_broken_archive_stops_download_with_one_line_and_touches_nothing(project: Path, tmp_path: Path, kind,
                                                                           message):
    archive = build(tmp_path, kind)
    before = tree_digest(project)
    result = run(["python", "-m", "pipeline.download"], project, check=False, IMDB_ARCHIVE=str(archive))
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == result.stderr.strip().splitlines()[-1:], result.stderr  # one error line, the last
    assert str(archive) in errors[0] and message in errors[0] and "Traceback" not in result.stderr
    assert tree_digest(project) == before and not (project / "data/raw/aclImdb_v1.tar.gz").exists()
