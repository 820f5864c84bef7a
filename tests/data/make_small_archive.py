"""Build tests/data/aclImdb_small.tar.gz from the shared IMDb archive.

Real reviews in the official layout, small enough for fast tests: the first
PER_GROUP reviews (by id) of each split/class, the url lists and README, and a
few reviews under train/unsup/ (which prepare must ignore). Deterministic:
sorted members, fixed timestamps, gzip mtime 0.

    python tests/data/make_small_archive.py ../shared/data/imdb/aclImdb_v1_labelled.tar.gz
"""

import gzip
import io
import re
import sys
import tarfile
from pathlib import Path

PER_GROUP = 40
OUT = Path(__file__).with_name("aclImdb_small.tar.gz")
REVIEW = re.compile(r"aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt")


def main(source: str) -> None:
    files: dict[str, bytes] = {}
    with tarfile.open(source, "r:gz") as tar:
        for member in tar:
            match = REVIEW.fullmatch(member.name)
            if match and int(match[3]) < PER_GROUP:
                files[member.name] = tar.extractfile(member).read()
            elif member.name == "aclImdb/README":
                files[member.name] = tar.extractfile(member).read()
    unsup = sorted(n for n in files if n.startswith("aclImdb/train/pos/"))[:3]
    for i, name in enumerate(unsup):
        files[f"aclImdb/train/unsup/{i}_0.txt"] = files[name]
    files["aclImdb/train/urls_pos.txt"] = b"http://www.imdb.com/title/tt0000000/usercomments\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for folder in sorted({str(Path(n).parent) for n in files} | {"aclImdb"}):
            info = tarfile.TarInfo(folder + "/")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o775, 1306886400
            tar.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o664, 1306886400
            tar.addfile(info, io.BytesIO(files[name]))
    with gzip.GzipFile(OUT, "wb", mtime=0) as out:
        out.write(buffer.getvalue())
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes, {len(files)} files)")


if __name__ == "__main__":
    main(sys.argv[1])
