"""Reading the aclImdb archive in place, without extracting anything to disk.

Accepts the official ``aclImdb_v1.tar.gz`` and the labelled-only copy (same
layout without ``train/unsup/``). Only ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt``
members are read; ``unsup/``, ``*.feat``, url lists and the README are skipped.
The archive is refused when a member name is absolute, contains ``..`` or is a
link, when a review's file name or rating breaks the layout, or when the four
split/class folders do not hold the same, non-zero number of reviews (12,500
each in the release). A review must be UTF-8 text of at most ``MAX_REVIEW_BYTES`` (the
release's longest is 13.7 KB): a bigger member is refused before it is read.
"""

from __future__ import annotations

import re
import tarfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from pipeline.stage import UserError

REVIEW_DIR = re.compile(r"aclImdb/(train|test)/(pos|neg)/([^/]+)")
REVIEW_FILE = re.compile(r"(\d+)_(\d+)\.txt")
GROUPS = (("train", "pos"), ("train", "neg"), ("test", "pos"), ("test", "neg"))
# The release rates positive reviews 7-10 and negative ones 1-4 (README of aclImdb).
RATINGS = {"pos": range(7, 11), "neg": range(1, 5)}
MAX_REVIEW_BYTES = 1 << 20


@dataclass(frozen=True)
class Review:
    split: str  # "train" or "test", the archive's own split
    label: int  # 1 for pos, 0 for neg
    rating: int  # 1-10, from the file name
    review_id: int  # the <id> of <id>_<rating>.txt, unique within split/class
    text: str

    @property
    def name(self) -> str:
        """Where the review lives in the archive, e.g. ``train/pos/17_9``."""
        return f"{self.split}/{'pos' if self.label else 'neg'}/{self.review_id}_{self.rating}"


class _Progress:
    """File wrapper that advances a progress bar by the compressed bytes read."""

    def __init__(self, raw, bar: tqdm):
        self.raw, self.bar = raw, bar

    def read(self, size: int = -1) -> bytes:
        chunk = self.raw.read(size)
        self.bar.update(len(chunk))
        return chunk


def read_reviews(path: Path, limit: int = 0, progress: bool = True) -> list[Review]:
    """All labelled reviews of the archive, ordered by split, class (pos first) and id.

    ``limit`` > 0 keeps the first ``limit`` reviews (by id) of each split/class;
    the whole archive is still checked.
    """
    reviews: list[Review] = []
    try:
        size = path.stat().st_size
        with (
            path.open("rb") as raw,
            tqdm(total=size, unit="B", unit_scale=True, desc=f"reading {path.name}",
                 disable=not progress, mininterval=1.0) as bar,
            tarfile.open(fileobj=_Progress(raw, bar), mode="r|gz") as tar,
        ):
            for member in tar:
                review = _review(tar, member, path)
                if review is not None:
                    reviews.append(review)
    except FileNotFoundError:
        raise UserError(f"{path}: archive not found") from None
    except (tarfile.TarError, zlib.error, EOFError, OSError) as error:
        raise UserError(
            f"{path}: not a readable gzip tar archive ({type(error).__name__}: {error}); "
            "expected aclImdb_v1.tar.gz or its labelled-only copy"
        ) from None
    _check_counts(path, reviews)
    reviews.sort(key=lambda r: (r.split != "train", -r.label, r.review_id))
    if limit:
        kept: Counter = Counter()
        reviews = [r for r in reviews if _take(kept, (r.split, r.label), limit)]
    return reviews


def _take(kept: Counter, group: tuple, limit: int) -> bool:
    kept[group] += 1
    return kept[group] <= limit


def _review(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> Review | None:
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts:
        raise UserError(f"{path}: unsafe member name {name!r} (absolute or containing '..'); refusing this archive")
    if member.issym() or member.islnk():
        raise UserError(f"{path}: member {name!r} is a link; the aclImdb layout has none, refusing this archive")
    match = REVIEW_DIR.fullmatch(name.removeprefix("./"))
    if match is None or not member.isfile():
        return None  # unsup/, url lists, README, *.feat, folders
    split, polarity, file_name = match.groups()
    parsed = REVIEW_FILE.fullmatch(file_name)
    if parsed is None:
        raise UserError(f"{path}: member {name!r} does not follow the layout <id>_<rating>.txt")
    review_id, rating = int(parsed[1]), int(parsed[2])
    if rating not in RATINGS[polarity]:
        low, high = RATINGS[polarity][0], RATINGS[polarity][-1]
        raise UserError(f"{path}: member {name!r} has rating {rating}; {polarity} reviews are rated {low}-{high}")
    if member.size > MAX_REVIEW_BYTES:
        raise UserError(f"{path}: member {name!r} is {member.size:,} bytes; a review must be at most "
                        f"{MAX_REVIEW_BYTES:,} bytes (the release's longest is 13,704)")
    data = tar.extractfile(member).read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: member {name!r} is not UTF-8 text (byte 0x{data[error.start]:02x} at offset "
                        f"{error.start}); reviews must be UTF-8 as in the release") from None
    return Review(split, 1 if polarity == "pos" else 0, rating, review_id, text)


def _check_counts(path: Path, reviews: list[Review]) -> None:
    counts = Counter((r.split, "pos" if r.label else "neg") for r in reviews)
    found = ", ".join(f"{s}/{c}: {counts[(s, c)]:,}" for s, c in GROUPS)
    if len({counts[group] for group in GROUPS}) != 1 or counts[GROUPS[0]] == 0:
        raise UserError(
            f"{path}: the aclImdb layout promises the same non-zero number of reviews in "
            f"train/pos, train/neg, test/pos and test/neg (12,500 each in the release); found {found}"
        )
    ids = Counter((r.split, r.label, r.review_id) for r in reviews)
    duplicated = [key for key, n in ids.items() if n > 1]
    if duplicated:
        split, label, review_id = duplicated[0]
        raise UserError(f"{path}: review id {review_id} appears twice in {split}/{'pos' if label else 'neg'}")
