"""The download stage against a real HTTP server on 127.0.0.1, and the IMDB_ARCHIVE copy."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline import download
from pipeline.stage import UserError
from tests.conftest import SMALL_ARCHIVE, run, set_params

PAYLOAD = SMALL_ARCHIVE.read_bytes()
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class ArchiveServer(BaseHTTPRequestHandler):
    """Serves PAYLOAD at several paths, each misbehaving in its own way.

    /good        200, or 206 for a Range request
    /drop-once   the first request sends half the bytes and closes; later ones resume
    /drop-always every request sends half of what it promised and closes
    /no-range    ignores Range headers (200 with the whole file)
    anything else 404
    """

    ranges: list[str | None] = []
    served: dict[str, int] = {}

    def do_GET(self):  # noqa: N802 (the http.server API)
        type(self).ranges.append(self.headers.get("Range"))
        count = type(self).served[self.path] = type(self).served.get(self.path, 0) + 1
        if self.path not in ("/good", "/drop-once", "/drop-always", "/no-range"):
            self.send_error(404, "Not Found")
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and self.path != "/no-range":
            start = int(match[1])
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        drop = self.path == "/drop-always" or (self.path == "/drop-once" and count == 1)
        self.wfile.write(body[: len(body) // 2] if drop else body)
        if drop:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(download, "BACKOFF_SECONDS", 0.0)
    ArchiveServer.ranges, ArchiveServer.served = [], {}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ArchiveServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def fetch(url, destination, sha256=SHA256, retries=2):
    download.fetch(url, destination, sha256, timeout=5, retries=retries, progress=False)


def test_good_download_is_verified_and_renamed_into_place(server, tmp_path):
    out = tmp_path / "raw" / "aclImdb_v1.tar.gz"
    fetch(f"{server}/good", out)
    assert out.read_bytes() == PAYLOAD
    assert list(out.parent.iterdir()) == [out]  # no .part left behind


def test_dropped_connection_resumes_with_a_range_request(server, tmp_path):
    out = tmp_path / "aclImdb_v1.tar.gz"
    fetch(f"{server}/drop-once", out)
    assert out.read_bytes() == PAYLOAD
    assert ArchiveServer.ranges == [None, f"bytes={len(PAYLOAD) // 2}-"]


def test_server_without_range_support_restarts_from_zero(server, tmp_path):
    out = tmp_path / "aclImdb_v1.tar.gz"
    (tmp_path / "aclImdb_v1.tar.gz.part").write_bytes(PAYLOAD[:1000])
    fetch(f"{server}/no-range", out)
    assert out.read_bytes() == PAYLOAD


def test_connection_dropped_every_time_fails_and_leaves_no_output(server, tmp_path):
    out = tmp_path / "aclImdb_v1.tar.gz"
    with pytest.raises(UserError, match="failed after 3 attempts"):
        fetch(f"{server}/drop-always", out)
    assert not out.exists()


def test_wrong_checksum_discards_the_file(server, tmp_path):
    out = tmp_path / "aclImdb_v1.tar.gz"
    with pytest.raises(UserError, match=f"SHA-256 is {SHA256}, expected download.sha256 = 0000"):
        fetch(f"{server}/good", out, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_not_found_is_not_retried(server, tmp_path):
    with pytest.raises(UserError, match="HTTP 404 Not Found; check download.url"):
        fetch(f"{server}/missing.tar.gz", tmp_path / "a.tar.gz")
    assert ArchiveServer.served == {"/missing.tar.gz": 1}
    assert not (tmp_path / "a.tar.gz").exists()


def test_no_network_tells_the_user_to_set_imdb_archive(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "BACKOFF_SECONDS", 0.0)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UserError, match="set IMDB_ARCHIVE=/path/to/aclImdb_v1.tar.gz"):
        fetch(f"http://127.0.0.1:{port}/aclImdb_v1.tar.gz", tmp_path / "a.tar.gz", retries=1)


def test_stage_downloads_from_params_url(server, project):
    set_params(project, **{"download.url": f"{server}/good", "download.sha256": SHA256})
    run(["python", "-m", "pipeline.download"], project)
    assert (project / "data/raw/aclImdb_v1.tar.gz").read_bytes() == PAYLOAD


def test_stage_with_a_wrong_checksum_exits_2_with_one_line(server, project):
    set_params(project, **{"download.url": f"{server}/good"})  # the official sha256: mismatch
    result = run(["python", "-m", "pipeline.download"], project, check=False)
    assert result.returncode == 2
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == result.stderr.strip(
    ).splitlines()[-1:]
    assert "SHA-256 is" in result.stderr and "Traceback" not in result.stderr
    assert not (project / "data/raw/aclImdb_v1.tar.gz").exists()


def test_stage_copies_a_checked_local_archive(project, tmp_path):
    run(["python", "-m", "pipeline.download"], project, IMDB_ARCHIVE=str(SMALL_ARCHIVE))
    assert (project / "data/raw/aclImdb_v1.tar.gz").read_bytes() == PAYLOAD
    bogus = tmp_path / "bogus.tar.gz"
    bogus.write_bytes(b"not an archive")
    for archive, message in ((bogus, "not a readable gzip tar archive"), (tmp_path / "nope", "no such file")):
        result = run(["python", "-m", "pipeline.download"], project, check=False, IMDB_ARCHIVE=str(archive))
        assert result.returncode == 2 and message in result.stderr
        assert "Traceback" not in result.stderr
