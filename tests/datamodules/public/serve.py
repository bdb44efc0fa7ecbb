"""Download tests' helpers: a local HTTP server serving one folder on 127.0.0.1 from a thread, the zip it
serves, and the :class:`~datamodules.public.download.Source` pointing at it."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import shutil
import threading
import zipfile
from pathlib import Path
from typing import Callable, Iterator

from datamodules.public.download import Archive, Source


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass


@contextlib.contextmanager
def serving(folder: Path) -> Iterator[str]:
    """``with serving(folder) as base_url:`` — ``base_url + "/name"`` fetches ``folder/name``."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def served_zip(tmp_path: Path, name: str, write: Callable[[Path], object]) -> tuple[Path, str]:
    """``write(tree)`` fills a fresh folder, which is zipped (paths relative to it) into ``tmp_path/served/<name>``
    and removed; returns (the zip, its SHA-256)."""
    tree = tmp_path / "tree"
    write(tree)
    served = tmp_path / "served"
    served.mkdir(exist_ok=True)
    archive = served / name
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(tree.rglob("*")):
            handle.write(path, path.relative_to(tree))
    shutil.rmtree(tree)
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def served_source(dataset: str, url: str, archive: Path, subdir: str = "") -> Source:
    """The download source of ``dataset`` fetching ``archive`` (a :func:`served_zip`) from ``url``."""
    return Source(dataset, (Archive(f"{url}/{archive.name}", archive.name, subdir=subdir),))
