"""Verified downloads of public datasets: resumable fetch, checksum, atomic extraction.

``datamodule.download=true`` calls :func:`ensure_dataset`. Nothing is fetched unless asked for, and
nothing half-done is ever taken as data:

1. the archive is fetched to ``.<root name>.downloads/<file>.part`` beside ``root``; an interrupted fetch resumes from the
   bytes already there (HTTP ``Range``) or, when the server ignores ranges, starts again;
2. the finished file's SHA-256 (or the publisher's MD5 where that is all that is published) must equal
   the pinned value, else the file is deleted and the error names both digests. A dataset without a
   pinned digest is fetched, its SHA-256 printed, and refused until the user pins it
   (``datamodule.archive_sha256=<digest>``): a checksum is never invented;
3. the archives are extracted into a staging folder beside ``root`` that is renamed to ``root`` only once
   complete, so a crash mid-extraction leaves no partial dataset under ``root``.

Datasets that need a registration (DRIVE, the Kaggle DSB-2018) or a manual step get an error that
says where to get the files and which layout to put under ``root``.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

log = logging.getLogger(__name__)
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download that could not be completed or verified; the message says what to do."""


@dataclass(frozen=True)
class Archive:
    """One published archive: where it is, how it is verified, and which folder of it is the dataset.

    ``subdir``: the folder inside the archive that becomes ``root`` (``""``: the archive's top level).
    ``sha256`` / ``md5``: pinned digests (hex); ``md5`` only where the publisher publishes nothing better.
    """

    url: str
    filename: str
    sha256: str | None = None
    md5: str | None = None
    subdir: str = ""


@dataclass(frozen=True)
class Source:
    """How a dataset is obtained: its archives, or ``manual`` instructions when it cannot be fetched."""

    dataset: str
    archives: Sequence[Archive] = ()
    homepage: str = ""
    manual: str = ""  # set when a registration or licence click-through is needed


def github_master(dataset: str, repository: str, subdir: str = "") -> Source:
    """A dataset published in the GitHub repository ``owner/name``: its master-branch zip (GitHub publishes
    no digest), whose ``<name>-master/`` folder, or ``subdir`` inside it, becomes ``root``."""
    folder = f"{repository.split('/')[-1]}-master"
    return Source(dataset, archives=(Archive(f"https://github.com/{repository}/archive/refs/heads/master.zip",
                                             f"{folder}.zip", subdir=f"{folder}/{subdir}" if subdir else folder),),
                  homepage=f"https://github.com/{repository}")


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, target: Path, timeout: float = 60.0, opener: Callable = urllib.request.urlopen) -> Path:
    """Fetch ``url`` to ``target``, resuming ``target.part`` if one is there; returns ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with opener(request, timeout=timeout) as response:
            status = getattr(response, "status", 200)
            if status == 416:  # the part file already holds everything
                part.replace(target)
                return target
            resumed = have and status == 206
            if have and not resumed:
                log.info("%s: server ignored the resume request; fetching from the start", url)
            with open(part, "ab" if resumed else "wb") as out:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            length = response.headers.get("Content-Length")
            expected = None if length is None else int(length) + (have if resumed else 0)  # 206: the rest only
            if expected is not None and part.stat().st_size != expected:
                raise DownloadError(f"{url}: connection closed after {part.stat().st_size} of {expected} bytes; "
                                    f"rerun with download: true to resume ({part} is kept)")
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:
            part.replace(target)
            return target
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        if isinstance(error, DownloadError):
            raise
        reason = getattr(error, "reason", error)
        raise DownloadError(f"{url}: could not fetch ({reason}); this machine may be offline. Bytes fetched so "
                            f"far are kept in {part} and a rerun resumes") from None
    part.replace(target)
    return target


def verify(path: Path, archive: Archive) -> None:
    """Check ``path`` against the pinned digest; delete it and raise :class:`DownloadError` on mismatch."""
    if archive.sha256 is None and archive.md5 is None:
        actual = file_digest(path, "sha256")
        raise DownloadError(f"{archive.url}: no pinned checksum for {archive.filename}; the downloaded file has "
                            f"SHA-256 {actual}. If you trust this source, pin it with "
                            f"datamodule.archive_sha256={actual} and rerun ({path} is kept)")
    algorithm, expected = ("sha256", archive.sha256) if archive.sha256 else ("md5", archive.md5)
    actual = file_digest(path, algorithm)
    if actual.lower() != str(expected).lower():
        path.unlink(missing_ok=True)
        raise DownloadError(f"{archive.url}: {algorithm} of {archive.filename} is {actual}, expected {expected}; the "
                            "file was deleted (corrupt or changed upstream). Rerun to fetch it again")


def extract_into(path: Path, staging: Path, subdir: str = "") -> None:
    """Extract archive ``path`` and move its ``subdir`` (or its top level) into ``staging``."""
    unpacked = Path(tempfile.mkdtemp(prefix=".unpack-", dir=staging.parent))
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                _check_members(path, archive.namelist())
                archive.extractall(unpacked)
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as archive:
                _check_members(path, archive.getnames())
                archive.extractall(unpacked, filter="data")
        else:
            raise DownloadError(f"{path}: neither a zip nor a tar archive; delete it and rerun")
        source = unpacked / subdir if subdir else unpacked
        if not source.is_dir():
            raise DownloadError(f"{path}: the archive has no folder {subdir!r}; it holds "
                                f"{sorted(p.name for p in unpacked.iterdir())}")
        for item in source.iterdir():
            item.rename(staging / item.name)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as error:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{path}: archive is corrupt ({error}); it was deleted, rerun to fetch it again") from None
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)


def _check_members(path: Path, names: Sequence[str]) -> None:
    bad = [name for name in names if name.startswith("/") or ".." in Path(name).parts]
    if bad:
        raise DownloadError(f"{path}: refusing members outside the archive: {bad[:5]}")


def downloads_dir(root: Path) -> Path:
    """Where archives are kept: beside ``root`` (``.<root name>.downloads``), so ``root`` appears only when complete."""
    return root.parent / f".{root.name}.downloads"


def ensure_dataset(source: Source, root: Path, present: Callable[[Path], bool], sha256: str | None = None) -> None:
    """Make ``root`` hold the dataset: nothing to do when ``present(root)``; else fetch, verify and extract
    every archive of ``source`` into a staging folder that is renamed to ``root`` once complete
    (``sha256`` pins the first archive's digest when the repository pins none)."""
    root = Path(root).expanduser()
    if present(root):
        return
    if source.manual or not source.archives:
        raise DownloadError(f"{source.dataset}: cannot be downloaded automatically. {source.manual}")
    if root.exists() and any(root.iterdir()):
        raise DownloadError(f"{source.dataset}: {root} exists but does not hold the dataset's layout; remove it "
                            "(or point root at an empty or new folder) and rerun with download: true")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.staging-", dir=root.parent))
    try:
        for index, archive in enumerate(source.archives):
            if index == 0 and sha256:
                archive = Archive(archive.url, archive.filename, sha256=sha256, md5=None, subdir=archive.subdir)
            target = downloads_dir(root) / archive.filename
            if not target.exists():
                log.info("%s: fetching %s", source.dataset, archive.url)
                fetch(archive.url, target)
            verify(target, archive)
            extract_into(target, staging, archive.subdir)
        if not present(staging):
            raise DownloadError(f"{source.dataset}: the archives from {source.homepage or source.archives[0].url} do "
                                "not hold the expected layout")
        if root.exists():
            root.rmdir()
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
