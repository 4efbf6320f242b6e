"""The bytes of uploaded documents: kept once per content, named by their SHA-256, in the
node's ``documents`` folder (mode 0700, each file 0600).

An upload (:class:`Upload`) is written to a hidden ``.part-*`` file as it arrives, hashed
on the way; it is refused (``CrmError``, field ``file``, and the part file removed) when
it passes the size limit, when its name's extension is not in :data:`KINDS`, or when its
first bytes (and, for Word and Excel files, the zip's members; for text, every byte) do
not match that kind. The browser's content type is never trusted: the stored type is the
one of the kind the file proved to be. :meth:`Upload.finish` moves the checked file to its
SHA-256 name; if that file exists already, the same content is stored once and the part
file goes. A part file left by a node that stopped mid-upload is removed at start
(:func:`clear_parts`). Nothing here touches the database: the caller records the document
after :meth:`~Upload.finish`, and calls :func:`discard` if that fails.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

from node.base.files import fsync_dir
from node.crm.errors import CrmError, CrmErrorCode

_PART = ".part-"
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Kind:
    """A kind of file a user may upload, known by its name's extension."""

    content_type: str
    label: str
    #: The file starts with one of these (none: a text file, checked whole as UTF-8).
    magic: tuple[bytes, ...] = ()
    #: A zip (Office) file must hold this member.
    member: str | None = None


_ZIP = (b"PK\x03\x04",)
_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

#: What may be uploaded, by extension.
KINDS: dict[str, Kind] = {
    ".pdf": Kind("application/pdf", "PDF", (b"%PDF-",)),
    ".png": Kind("image/png", "PNG image", (b"\x89PNG\r\n\x1a\n",)),
    ".jpg": Kind("image/jpeg", "JPEG image", (b"\xff\xd8\xff",)),
    ".jpeg": Kind("image/jpeg", "JPEG image", (b"\xff\xd8\xff",)),
    ".docx": Kind(_DOCX, "Word document", _ZIP, "word/document.xml"),
    ".xlsx": Kind(_XLSX, "Excel workbook", _ZIP, "xl/workbook.xml"),
    ".txt": Kind("text/plain; charset=utf-8", "text file"),
    ".csv": Kind("text/csv; charset=utf-8", "CSV file"),
}
#: For the upload form's hint and its ``accept`` attribute.
ALLOWED_NAMES = "PDF, PNG, JPEG, Word (.docx), Excel (.xlsx), text (.txt) or CSV"
ACCEPT = ",".join(KINDS)


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size_bytes: int
    content_type: str
    #: This upload created the file (it was not stored already).
    created: bool


def _refuse(message: str, code: CrmErrorCode = "invalid") -> CrmError:
    return CrmError(code, message, "file")


def file_name(sent: str) -> str:
    """The name to keep for an uploaded file: its last path part, without control
    characters, at most 200 characters (keeping the extension)."""
    name = re.split(r"[/\\]", sent)[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip().lstrip(".")
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 199 - len(ext)] + dot + ext) if dot and len(ext) < 20 else name[:200]
    return name


def kind_of(name: str) -> Kind:
    ext = os.path.splitext(name)[1].lower()
    kind = KINDS.get(ext)
    if kind is None:
        raise _refuse(f"The file must be a {ALLOWED_NAMES} file")
    return kind


def folder_of(documents_dir: Path) -> Path:
    documents_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(documents_dir, 0o700)
    return documents_dir


def path_of(documents_dir: Path, sha256: str) -> Path:
    if not _SHA256.fullmatch(sha256):
        raise ValueError("not a SHA-256 in hex")
    return documents_dir / sha256


def clear_parts(documents_dir: Path) -> None:
    """Remove the part files of uploads cut short when the node last stopped."""
    if documents_dir.is_dir():
        for path in documents_dir.glob(_PART + "*"):
            path.unlink(missing_ok=True)


def discard(documents_dir: Path, stored: StoredFile) -> None:
    """Undo :meth:`Upload.finish` when the document could not be recorded: remove the
    file if this upload created it (the caller checks that no document names it)."""
    if stored.created:
        path_of(documents_dir, stored.sha256).unlink(missing_ok=True)


class Upload:
    """One file arriving. Call :meth:`finish` at its end, or :meth:`abort`."""

    def __init__(self, documents_dir: Path, name: str, *, limit: int) -> None:
        self.name = file_name(name)
        if not self.name:
            raise _refuse("Choose a file to upload")
        self.kind = kind_of(self.name)
        self.limit = limit
        self.folder = folder_of(documents_dir)
        self.size = 0
        self._hash = hashlib.sha256()
        self._head = b""
        self._text = codecs.getincrementaldecoder("utf-8")() if not self.kind.magic else None
        self._path = self.folder / f"{_PART}{uuid.uuid4().hex}"
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            self.abort()
            raise _refuse(too_large(self.limit), "too_large")
        if len(self._head) < 16:
            self._head += chunk[: 16 - len(self._head)]
        if self._text is not None:
            self._check_text(chunk, final=False)
        self._hash.update(chunk)
        self._file.write(chunk)

    def _check_text(self, chunk: bytes, *, final: bool) -> None:
        assert self._text is not None
        try:
            text = self._text.decode(chunk, final=final)
        except UnicodeDecodeError:
            text = "\x00"
        if "\x00" in text:
            self.abort()
            raise _refuse(f"The file is not a {self.kind.label}: it is not plain UTF-8 text")

    def finish(self) -> StoredFile:
        """Check what arrived and store it under its SHA-256 (blocking: run it on a
        thread)."""
        try:
            if self.size == 0:
                raise _refuse("The file is empty")
            if self._text is not None:
                self._check_text(b"", final=True)
            elif not self._head.startswith(self.kind.magic):
                raise _refuse(f"The file is not a {self.kind.label}, whatever its name says")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            if self.kind.member is not None and not _has_member(self._path, self.kind.member):
                raise _refuse(f"The file is not a {self.kind.label}, whatever its name says")
            sha256 = self._hash.hexdigest()
            target = path_of(self.folder, sha256)
            if target.exists():
                self._path.unlink()
                return StoredFile(sha256, self.size, self.kind.content_type, created=False)
            os.replace(self._path, target)
            fsync_dir(self.folder)
            return StoredFile(sha256, self.size, self.kind.content_type, created=True)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Leave nothing behind."""
        if not self._file.closed:
            self._file.close()
        self._path.unlink(missing_ok=True)


def _has_member(path: Path, member: str) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return member in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def too_large(limit: int) -> str:
    return f"The file must be smaller than {megabytes(limit)}"


def megabytes(limit: int) -> str:
    if limit >= 1024 * 1024:
        return f"{limit / (1024 * 1024):g} MB"
    return f"{limit / 1024:g} KB"
