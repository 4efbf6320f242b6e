"""The backup archive: what ``refnode backup`` writes and ``refnode restore`` reads.

A gzip-compressed tar, sealed whole under a passphrase when asked
(:mod:`node.base.sealed_stream`). Its first member is ``manifest.json``::

    {"format": "refnode-backup/1", "created_at": "...", "refnode_version": "0.1.0",
     "node_id": "...", "org_name": "...", "schema_version": 40, "keys_sealed": false,
     "files": [{"path": "node.db", "bytes": 1234, "sha256": "..."}, ...]}

then every file it lists, under the same path, relative to the data folder:

- ``node.db``: a consistent copy of the live database (:mod:`node.storage.snapshot`);
- ``refnode.toml``: the configuration the node runs with (the file given with ``--config``
  when there is one, else the data folder's);
- ``keys/``: the key files as they are, so keys sealed under the key passphrase stay sealed
  (the archive holds no passphrase);
- everything else in the data folder (``admin-token``, ``metrics-token``, uploaded
  documents, an SMTP password file), except what belongs to one run of the node
  (:data:`LEFT_OUT`).

Restoring checks every file's size and SHA-256 against the manifest before anything is
put in place.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

FORMAT = "refnode-backup/1"
MANIFEST = "manifest.json"
DATABASE = "node.db"
CONFIG = "refnode.toml"
#: What a data folder holds for one run only, or holds elsewhere in the archive: never archived.
LEFT_OUT = frozenset({"node.db", "node.db-wal", "node.db-shm", "node.db-writer", "node.db-journal", "serve.lock",
                      "serving.json", "run", "csv-imports", "mail-out", CONFIG})
#: gzip's fastest level: a 298 MB database (a million contacts) packs in 1.9 s to 48 MB,
#: where level 9 (tarfile's own) takes 10.3 s for 46 MB, CPU taken from the serving node.
COMPRESS_LEVEL = 1
#: Files up to this size are read once, into memory, so what is hashed is what is archived.
SMALL_BYTES = 1 << 20
_PIECE = 1 << 20


class ArchiveError(Exception):
    """The archive is not one we can restore: damaged, changed, or of another format."""


@dataclass(frozen=True)
class Member:
    """One file of the archive: its path in it, and its bytes (small) or its file (large)."""

    path: str
    size: int
    sha256: str
    data: bytes | None = None
    source: Path | None = None


def member_from_bytes(path: str, data: bytes) -> Member:
    return Member(path, len(data), hashlib.sha256(data).hexdigest(), data=data)


def member_from_file(path: str, source: Path) -> Member:
    size = source.stat().st_size
    if size <= SMALL_BYTES:
        return member_from_bytes(path, source.read_bytes())
    digest = hashlib.sha256()
    with open(source, "rb") as fh:
        while piece := fh.read(_PIECE):
            digest.update(piece)
    return Member(path, size, digest.hexdigest(), source=source)


def folder_members(data_dir: Path) -> list[Member]:
    """Every file of the data folder to archive (all but :data:`LEFT_OUT`), sorted."""
    members = []
    for root, dirs, files in os.walk(data_dir):
        here = Path(root)
        relative = here.relative_to(data_dir)
        if relative == Path("."):
            dirs[:] = [d for d in dirs if d not in LEFT_OUT]
            files = [f for f in files if f not in LEFT_OUT]
        dirs.sort()
        for name in sorted(files):
            path = here / name
            if path.is_file() and not path.is_symlink() and not name.endswith(".tmp"):
                members.append(member_from_file((relative / name).as_posix(), path))
    return members


def manifest(members: list[Member], **about: Any) -> bytes:
    body = {"format": FORMAT, **about,
            "files": [{"path": m.path, "bytes": m.size, "sha256": m.sha256} for m in members]}
    return (json.dumps(body, indent=2) + "\n").encode("utf-8")


def _info(path: str, size: int, now: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.size, info.mode, info.mtime = size, 0o600, int(now)
    return info


def write_archive(sink: BinaryIO, members: list[Member], about: dict[str, Any],
                  written: Callable[[int], None] | None = None) -> None:
    """Write the archive to ``sink``: the manifest, then every member.
    ``written(n)`` is told of each ``n`` bytes of member data archived."""
    now = time.time()
    tell = written or (lambda n: None)
    with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=int(now)) as packed, \
            tarfile.open(fileobj=packed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        head = manifest(members, **about)
        tar.addfile(_info(MANIFEST, len(head), now), io.BytesIO(head))
        for member in members:
            if member.data is not None:
                tar.addfile(_info(member.path, member.size, now), io.BytesIO(member.data))
                tell(member.size)
                continue
            assert member.source is not None
            with open(member.source, "rb") as fh:
                tar.addfile(_info(member.path, member.size, now), _Counting(fh, tell))


class _Counting(io.RawIOBase):
    """A file read through, telling how much was read."""

    def __init__(self, fh: BinaryIO, tell: Callable[[int], None]) -> None:
        self._fh, self._tell = fh, tell

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self._tell(len(data))
        return data


# -- reading ------------------------------------------------------------------------------


def safe_path(name: str) -> PurePosixPath:
    """A member's path if it stays inside the folder it is restored to; else ArchiveError."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name or path.parts[0] in ("", "."):
        raise ArchiveError(f"the archive names a file outside the data folder: {name!r}")
    return path


def read_manifest(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
        if body.get("format") != FORMAT:
            raise ArchiveError(f"not a refnode backup of a format this release reads (format {body.get('format')!r})")
        files = body["files"]
        for entry in files:
            safe_path(entry["path"])
            if not (isinstance(entry["bytes"], int) and isinstance(entry["sha256"], str)):
                raise ValueError("bad file entry")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArchiveError(f"the archive's manifest is damaged: {exc}") from None
    if len({entry["path"] for entry in files}) != len(files) or DATABASE not in {e["path"] for e in files}:
        raise ArchiveError("the archive's manifest lists a file twice, or no database")
    return dict(body)


def extract(source: BinaryIO, into: Path, read: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Extract the archive read from ``source`` into the empty folder ``into``, checking
    every file against the manifest (size, SHA-256, none missing or extra); return the
    manifest. Files are written 0600, folders 0700. ``read(n)``: n more bytes of files."""
    tell = read or (lambda n: None)
    try:
        with gzip.GzipFile(fileobj=source, mode="rb") as packed, tarfile.open(fileobj=packed, mode="r|") as tar:
            members = iter(tar)
            first = next(members, None)
            if first is None or first.name != MANIFEST or not first.isfile() or first.size > 16 << 20:
                raise ArchiveError("not a refnode backup: it does not start with its manifest")
            handle = tar.extractfile(first)
            assert handle is not None
            about = read_manifest(handle.read())
            expected = {entry["path"]: entry for entry in about["files"]}
            seen: set[str] = set()
            for member in members:
                _extract_one(tar, member, expected, seen, into, tell)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ArchiveError(f"the archive is damaged or cut short: {exc}") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise ArchiveError(f"the archive lacks files its manifest lists: {', '.join(missing[:5])}")
    return about


def _extract_one(tar: tarfile.TarFile, member: tarfile.TarInfo, expected: dict[str, Any], seen: set[str],
                 into: Path, tell: Callable[[int], None]) -> None:
    path = safe_path(member.name)
    if member.name not in expected or member.name in seen or not member.isfile():
        raise ArchiveError(f"the archive holds a file its manifest does not list: {member.name!r}")
    entry = expected[member.name]
    target = into.joinpath(*path.parts)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    handle = tar.extractfile(member)
    assert handle is not None
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        for piece in _pieces(handle):
            digest.update(piece)
            size += len(piece)
            out.write(piece)
            tell(len(piece))
        out.flush()
        os.fsync(out.fileno())
    if size != entry["bytes"] or digest.hexdigest() != entry["sha256"]:
        raise ArchiveError(f"{member.name} does not match its checksum in the manifest: the archive is damaged")
    seen.add(member.name)


def _pieces(handle: BinaryIO) -> Iterator[bytes]:
    while piece := handle.read(_PIECE):
        yield piece
