"""Reading the archive in place: what is accepted, what is refused."""

import io
import tarfile
from pathlib import Path

import pytest

from pipeline.archive import read_reviews
from pipeline.stage import UserError
from tests.conftest import SMALL_ARCHIVE


def make_archive(path: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


def layout(per_group: int = 2) -> dict[str, bytes]:
    files = {}
    for split in ("train", "test"):
        for polarity, rating in (("pos", 8), ("neg", 3)):
            for i in range(per_group):
                files[f"aclImdb/{split}/{polarity}/{i}_{rating}.txt"] = f"{split} {polarity} {i}".encode()
    return files


def test_small_archive_reads_reviews_with_ratings_and_ignores_unsup():
    reviews = read_reviews(SMALL_ARCHIVE, progress=False)
    assert len(reviews) == 160
    assert {r.split for r in reviews} == {"train", "test"}
    assert all("unsup" not in r.name for r in reviews)
    assert all((r.rating >= 7) == (r.label == 1) for r in reviews)
    assert reviews[0].name.startswith("train/pos/")


def test_limit_keeps_the_first_reviews_of_each_group():
    reviews = read_reviews(SMALL_ARCHIVE, limit=3, progress=False)
    assert len(reviews) == 12
    assert sorted({r.review_id for r in reviews}) == [0, 1, 2]


def test_plain_layout_is_accepted(tmp_path):
    assert len(read_reviews(make_archive(tmp_path / "a.tar.gz", layout()), progress=False)) == 8


@pytest.mark.parametrize(
    ("extra", "links", "message"),
    [
        ({"/etc/evil": b"x"}, None, "unsafe member name '/etc/evil'"),
        ({"aclImdb/../evil.txt": b"x"}, None, "unsafe member name 'aclImdb/../evil.txt'"),
        ({}, {"aclImdb/train/pos/9_9.txt": "/etc/passwd"}, "is a link"),
        ({"aclImdb/train/pos/notes.txt": b"x"}, None, "does not follow the layout <id>_<rating>.txt"),
        ({"aclImdb/train/pos/5_2.txt": b"x"}, None, "has rating 2; pos reviews are rated 7-10"),
        ({"aclImdb/test/neg/7_3.txt": b"x"}, None, "found train/pos: 2, train/neg: 2, test/pos: 2, test/neg: 3"),
    ],
)
def test_refuses_unsafe_or_inconsistent_archives(tmp_path, extra, links, message):
    path = make_archive(tmp_path / "bad.tar.gz", layout() | extra, links)
    with pytest.raises(UserError, match=None) as raised:
        read_reviews(path, progress=False)
    assert message in str(raised.value)


def test_refuses_files_that_are_not_gzip_tars(tmp_path):
    not_gzip = tmp_path / "x.tar.gz"
    not_gzip.write_bytes(b"hello, not an archive")
    with pytest.raises(UserError, match="not a readable gzip tar archive"):
        read_reviews(not_gzip, progress=False)
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(SMALL_ARCHIVE.read_bytes()[:30_000])
    with pytest.raises(UserError, match="not a readable gzip tar archive"):
        read_reviews(truncated, progress=False)
    with pytest.raises(UserError, match="no reviews|12,500 each"):
        read_reviews(make_archive(tmp_path / "empty.tar.gz", {"aclImdb/README": b"hi"}), progress=False)
