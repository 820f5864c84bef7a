"""download stage: put the IMDb archive at data/raw/aclImdb_v1.tar.gz.

Reads   params download.*, environment variable IMDB_ARCHIVE (optional)
Writes  data/raw/aclImdb_v1.tar.gz
Run     python -m pipeline.download   (or: dvc repro download)

With IMDB_ARCHIVE set, that local file is checked (a readable gzip tar in the
aclImdb layout; the official archive and the labelled-only copy both pass) and
copied in. Otherwise ``download.url`` is fetched with a progress bar, a
timeout, retries that resume a partial file with an HTTP Range request when
the server allows it, and a SHA-256 check. Either way the output appears by an
atomic rename: an interrupted or corrupt transfer never leaves a file there.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

from pipeline import config
from pipeline.archive import read_reviews
from pipeline.paths import RAW_ARCHIVE, staged_copy, write_outputs
from pipeline.provenance import file_sha256
from pipeline.stage import UserError, run

CHUNK = 1 << 20
BACKOFF_SECONDS = 1.0  # wait before retry k is k * BACKOFF_SECONDS
OFFLINE_HINT = "no network? set IMDB_ARCHIVE=/path/to/aclImdb_v1.tar.gz to use a local copy"


class _Retry(Exception):
    """A transient failure: the next attempt may resume."""


def fetch(url: str, destination: Path, sha256: str, timeout: float, retries: int, progress: bool = True) -> None:
    """Download ``url`` to ``destination``, resuming from ``<destination>.part`` across attempts and runs."""
    partial = destination.with_name(destination.name + ".part")
    destination.parent.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for attempt in range(retries + 1):
        if attempt:
            print(f"retrying ({attempt}/{retries}) after: {last_error}", file=sys.stderr)
            time.sleep(attempt * BACKOFF_SECONDS)
        try:
            _attempt(url, partial, timeout, progress)
            break
        except _Retry as error:
            last_error = str(error)
    else:
        raise UserError(f"download of {url} failed after {retries + 1} attempts: {last_error}; {OFFLINE_HINT}")
    actual = file_sha256(partial)
    if actual != sha256:
        partial.unlink()
        raise UserError(
            f"{url}: SHA-256 is {actual}, expected download.sha256 = {sha256}; "
            "the file was discarded (wrong URL, or a changed file: check it, then update download.sha256)"
        )
    os.replace(partial, destination)


def _attempt(url: str, partial: Path, timeout: float, progress: bool) -> None:
    have = partial.stat().st_size if partial.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
            if response.status_code == 416 and have:  # asked past the end: restart cleanly
                partial.unlink()
                raise _Retry("the server refused to resume (HTTP 416); starting over")
            if response.status_code in (408, 429) or response.status_code >= 500:
                raise _Retry(f"HTTP {response.status_code} {response.reason}")
            if response.status_code not in (200, 206):
                raise UserError(f"{url}: HTTP {response.status_code} {response.reason}; check download.url")
            resumed = response.status_code == 206
            if not resumed:
                have = 0  # the server ignored the Range header: start from byte 0
            length = response.headers.get("Content-Length")
            expected = have + int(length) if length is not None else None
            with (
                partial.open("ab" if resumed else "wb") as out,
                tqdm(total=expected, initial=have, unit="B", unit_scale=True, disable=not progress,
                     desc=f"downloading {partial.name.removesuffix('.part')}", mininterval=1.0) as bar,
            ):
                # read1 hands over whatever arrived, so bytes received before a
                # dropped connection are written and the next attempt resumes after them.
                # decode_content=False: the file as served, even if a server gzips it again.
                while chunk := response.raw.read1(CHUNK, decode_content=False):
                    out.write(chunk)
                    bar.update(len(chunk))
            size = partial.stat().st_size
            if expected is not None and size < expected:
                raise _Retry(f"connection closed at {size:,} of {expected:,} bytes")
    except requests.exceptions.InvalidURL as error:
        raise UserError(f"download.url = {url!r}: not a valid URL ({error})") from None
    except (requests.ConnectionError, requests.Timeout, urllib3.exceptions.HTTPError) as error:
        raise _Retry(f"{type(error).__name__}: {_reason(error)}") from None


def _reason(error: Exception) -> str:
    """The innermost cause of a requests error, which names the real problem."""
    while error.__context__ is not None and error.__context__ is not error:
        error = error.__context__
    return str(error) or type(error).__name__


def copy_local(source: Path, destination: Path) -> None:
    """Check that ``source`` is an aclImdb archive, then copy it to ``destination`` atomically."""
    if not source.is_file():
        raise UserError(f"IMDB_ARCHIVE = {str(source)!r}: no such file; point it at aclImdb_v1.tar.gz")
    reviews = read_reviews(source)
    copy = staged_copy(destination, lambda temporary: shutil.copyfile(source, temporary))
    write_outputs({}, staged={destination: copy})
    print(f"copied {source} ({len(reviews):,} labelled reviews, sha256 {file_sha256(destination)})")


def main() -> None:
    import argparse

    argparse.ArgumentParser(description="Copy the IMDb archive named by IMDB_ARCHIVE, or download download.url with "
                                        "retries and a SHA-256 check, to data/raw/ (params download.*).").parse_args()
    params = config.load().download
    local = os.environ.get("IMDB_ARCHIVE")
    if local:
        copy_local(Path(local).expanduser(), RAW_ARCHIVE)
    else:
        fetch(params.url, RAW_ARCHIVE, params.sha256, params.timeout, params.retries)
        print(f"downloaded {params.url} to {RAW_ARCHIVE} (sha256 verified)")


if __name__ == "__main__":
    run(main, end_process=True)
