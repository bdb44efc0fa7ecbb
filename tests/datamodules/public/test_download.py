"""``datamodules/public/download.py`` against a local HTTP server: a good archive, a truncated fetch resumed
with ``Range``, a wrong checksum, an interrupted extraction, an offline machine, an unpinned archive and a
dataset that needs a registration."""
from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from datamodules.public import download
from datamodules.public.download import Archive, DownloadError, Source, downloads_dir, ensure_dataset


class _Server(http.server.ThreadingHTTPServer):
    files: dict[str, bytes]
    truncate_next: int | None  # bytes to send before dropping the connection, once
    requests: list[str | None]  # the Range header of every request


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        data = self.server.files.get(self.path.lstrip("/"))
        self.server.requests.append(self.headers.get("Range"))
        if data is None:
            self.send_error(404)
            return
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        if start >= len(data):
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if self.server.truncate_next is not None:
            body, self.server.truncate_next = body[: self.server.truncate_next], None
            self.close_connection = True
        self.wfile.write(body)


@contextlib.contextmanager
def serving(files: dict[str, bytes], truncate_first: int | None = None) -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.files, server.truncate_next, server.requests = files, truncate_first, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url(server: _Server, name: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{name}"


def toy_zip(n_files: int = 3, size: int = 50_000) -> bytes:
    """``toy-1.0/data/{a,b,...}.txt`` plus a README beside ``data/`` (incompressible bytes, so truncation bites)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("toy-1.0/README", "about")
        for k in range(n_files):
            archive.writestr(f"toy-1.0/data/{chr(97 + k)}.txt", hashlib.sha256(str(k).encode()).digest() * (size // 32))
    return buffer.getvalue()


def present(root: Path) -> bool:
    return (root / "a.txt").is_file()


def source(server: _Server, sha256: str | None = None, md5: str | None = None) -> Source:
    return Source("toy", (Archive(url(server, "toy.zip"), "toy.zip", sha256=sha256, md5=md5, subdir="toy-1.0/data"),),
                  homepage="https://example.org/toy")


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if "staging" in p.name or p.name.startswith(".unpack"))


def test_good_archive_is_fetched_verified_and_its_subdir_becomes_root(tmp_path):
    data = toy_zip()
    with serving({"toy.zip": data}) as server:
        ensure_dataset(source(server, sha256=hashlib.sha256(data).hexdigest()), tmp_path / "toy", present)
        assert sorted(p.name for p in (tmp_path / "toy").iterdir()) == ["a.txt", "b.txt", "c.txt"]
        assert (downloads_dir(tmp_path / "toy") / "toy.zip").read_bytes() == data
        ensure_dataset(source(server), tmp_path / "toy", present)  # present: nothing fetched, nothing checked
        assert len(server.requests) == 1
    assert leftovers(tmp_path) == []


def test_publisher_md5_is_accepted_where_no_sha256_is_published(tmp_path):
    data = toy_zip()
    with serving({"toy.zip": data}) as server:
        ensure_dataset(source(server, md5=hashlib.md5(data).hexdigest()), tmp_path / "toy", present)
    assert present(tmp_path / "toy")


def test_truncated_fetch_keeps_its_bytes_and_the_rerun_resumes_with_range(tmp_path):
    data = toy_zip()
    digest = hashlib.sha256(data).hexdigest()
    with serving({"toy.zip": data}, truncate_first=40_000) as server:
        with pytest.raises(DownloadError, match=f"connection closed after 40000 of {len(data)} bytes; rerun with "
                                                "download: true to resume"):
            ensure_dataset(source(server, sha256=digest), tmp_path / "toy", present)
        part = downloads_dir(tmp_path / "toy") / "toy.zip.part"
        assert part.stat().st_size == 40_000 and not (tmp_path / "toy").exists() and leftovers(tmp_path) == []
        server.truncate_next = 30_000  # the resumed fetch is cut short too: its length counts the kept bytes
        with pytest.raises(DownloadError, match=f"connection closed after 70000 of {len(data)} bytes"):
            ensure_dataset(source(server, sha256=digest), tmp_path / "toy", present)
        ensure_dataset(source(server, sha256=digest), tmp_path / "toy", present)
        assert server.requests == [None, "bytes=40000-", "bytes=70000-"]
    assert (downloads_dir(tmp_path / "toy") / "toy.zip").read_bytes() == data and present(tmp_path / "toy")


def test_wrong_checksum_deletes_the_file_names_both_digests_and_leaves_no_root(tmp_path):
    data = toy_zip()
    wrong = "ab" * 32
    with serving({"toy.zip": data}) as server:
        with pytest.raises(DownloadError, match=f"sha256 of toy.zip is {hashlib.sha256(data).hexdigest()}, "
                                                f"expected {wrong}; the file was deleted"):
            ensure_dataset(source(server, sha256=wrong), tmp_path / "toy", present)
    assert not (tmp_path / "toy").exists() and not (downloads_dir(tmp_path / "toy") / "toy.zip").exists()
    assert leftovers(tmp_path) == []


def test_interrupted_extraction_leaves_no_root_and_a_rerun_completes(tmp_path, monkeypatch):
    data = toy_zip()
    digest = hashlib.sha256(data).hexdigest()
    real = zipfile.ZipFile.extractall

    def crash(self, path=None, members=None, pwd=None):
        self.extract(self.namelist()[1], path)  # a first file lands, then the process is interrupted
        raise KeyboardInterrupt

    with serving({"toy.zip": data}) as server:
        monkeypatch.setattr(zipfile.ZipFile, "extractall", crash)
        with pytest.raises(KeyboardInterrupt):
            ensure_dataset(source(server, sha256=digest), tmp_path / "toy", present)
        assert not (tmp_path / "toy").exists() and leftovers(tmp_path) == []
        monkeypatch.setattr(zipfile.ZipFile, "extractall", real)
        ensure_dataset(source(server, sha256=digest), tmp_path / "toy", present)
        assert len(server.requests) == 1  # the verified archive was kept, not fetched again
    assert present(tmp_path / "toy")


def test_corrupt_archive_is_deleted_with_a_clear_error(tmp_path):
    data = b"PK\x03\x04 this is not really a zip" * 100
    with serving({"toy.zip": data}) as server:
        with pytest.raises(DownloadError, match="neither a zip nor a tar archive|archive is corrupt"):
            ensure_dataset(source(server, sha256=hashlib.sha256(data).hexdigest()), tmp_path / "toy", present)
    assert not (tmp_path / "toy").exists() and leftovers(tmp_path) == []


def test_offline_machine_gets_a_clear_message(tmp_path):
    with serving({}) as server:
        port = server.server_address[1]
    offline = Source("toy", (Archive(f"http://127.0.0.1:{port}/toy.zip", "toy.zip", sha256="0" * 64),))
    with pytest.raises(DownloadError, match="could not fetch .*this machine may be offline"):
        ensure_dataset(offline, tmp_path / "toy", present)
    assert not (tmp_path / "toy").exists()


def test_missing_file_on_the_server_names_the_http_status(tmp_path):
    with serving({}) as server:
        with pytest.raises(DownloadError, match="toy.zip: HTTP 404"):
            ensure_dataset(source(server, sha256="0" * 64), tmp_path / "toy", present)


def test_unpinned_archive_prints_its_sha256_refuses_and_is_kept_for_the_pinned_rerun(tmp_path):
    data = toy_zip()
    digest = hashlib.sha256(data).hexdigest()
    with serving({"toy.zip": data}) as server:
        with pytest.raises(DownloadError, match=f"no pinned checksum for toy.zip; the downloaded file has SHA-256 "
                                                f"{digest}.*datamodule.archive_sha256={digest}"):
            ensure_dataset(source(server), tmp_path / "toy", present)
        assert not (tmp_path / "toy").exists()
        ensure_dataset(source(server), tmp_path / "toy", present, sha256=digest)
        assert len(server.requests) == 1
    assert present(tmp_path / "toy")


def test_manual_source_gives_the_instructions(tmp_path):
    manual = Source("drive", homepage="https://example.org", manual="Register at example.org, put training/ under root.")
    with pytest.raises(DownloadError, match="drive: cannot be downloaded automatically. Register at example.org"):
        ensure_dataset(manual, tmp_path / "drive", present)


def test_a_non_empty_root_without_the_layout_is_not_overwritten(tmp_path):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "mine.txt").write_text("keep")
    with serving({"toy.zip": toy_zip()}) as server:
        with pytest.raises(DownloadError, match="exists but does not hold the dataset's layout"):
            ensure_dataset(source(server, sha256="0" * 64), tmp_path / "toy", present)
        assert server.requests == []
    assert (tmp_path / "toy" / "mine.txt").read_text() == "keep"


def test_members_outside_the_archive_are_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../evil.txt", "x")
    data = buffer.getvalue()
    with serving({"toy.zip": data}) as server:
        with pytest.raises(DownloadError, match=r"refusing members outside the archive: \['../evil.txt'\]"):
            ensure_dataset(source(server, sha256=hashlib.sha256(data).hexdigest()), tmp_path / "toy", present)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "toy").exists()


def test_fetch_restarts_when_the_server_ignores_range(tmp_path, monkeypatch):
    data = toy_zip()
    target = tmp_path / "dl" / "toy.zip"
    target.parent.mkdir()
    (tmp_path / "dl" / "toy.zip.part").write_bytes(b"stale bytes")

    class NoRange(io.BytesIO):
        status, headers = 200, {"Content-Length": str(len(data))}

        def __enter__(self):
            return self

    download.fetch("http://x/toy.zip", target, opener=lambda request, timeout: NoRange(data))
    assert target.read_bytes() == data
