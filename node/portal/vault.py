"""Client documents at rest, and the key that guards them and the passcodes.

- **The data key**: 32 random bytes in ``<keys_dir>/client-data.key`` (mode 0600, made on
  first use, refused if others may read it), as the node's other keys are kept: sealed
  with scrypt and ChaCha20-Poly1305 under the key passphrase when the node has one
  (``node.base.key_files``), and held in memory once read.
- **Files**: each uploaded client file is sealed with ChaCha20-Poly1305 under the data
  key (a fresh 12-byte nonce; the file's id as associated data, so a file cannot be passed
  off as another) in ``<data_dir>/client-files/<id>`` (folder 0700, file 0600). The clear
  bytes never touch the disk: an upload is held in memory (at most ``max_upload_bytes``)
  and checked there. Every read opens the seal and checks the SHA-256 recorded at upload;
  a changed byte raises :class:`DamagedFile` and nothing is served. ``cryptography`` is
  imported with the first file sealed or opened: an idle node has not loaded it.
- **Passcodes** are stored as an HMAC-SHA256 under a key derived from the data key: a
  6-digit code's plain hash could be reversed by trying all million, but not without the
  key, which is not in the database.

Client files never travel in a referral: the referral builder knows neither this folder
nor the ``client_files`` table.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import re
import threading
import zipfile
from pathlib import Path

from node.base.files import write_new
from node.base.key_files import KeyStoreError, seal_secret, unseal_secret
from node.crm.document_files import Kind, kind_of

KEY_FILE = "client-data.key"
SEALED_FORMAT = "refnode-client-data-key/1"
MAGIC = b"RNCF1"
_ID = re.compile(r"^[a-z]+_[0-9a-z]{26}$")


class DamagedFile(Exception):
    """A stored client file fails its seal or its SHA-256: it is not served."""


#: The passphrase each keys folder is sealed with (None: not sealed), as the running node
#: learns it at start (:func:`unlock`); the data key, once read, by keys folder.
_PASSPHRASES: dict[Path, bytes | None] = {}
_KEYS: dict[Path, bytes] = {}
_LOCK = threading.Lock()


def unlock(keys_dir: Path, passphrase: bytes | None) -> None:
    """Tell the vault how the node's keys are sealed (at start; nothing is read yet)."""
    with _LOCK:
        folder = keys_dir.absolute()
        _PASSPHRASES[folder] = passphrase
        _KEYS.pop(folder, None)


def data_key(keys_dir: Path) -> bytes:
    """The data key, made (0600, sealed under the key passphrase when the node's keys are)
    on first use, and kept in memory after the first read."""
    folder = keys_dir.absolute()
    with _LOCK:
        if folder not in _KEYS:
            _KEYS[folder] = _load_or_create(folder, _PASSPHRASES.get(folder))
        return _KEYS[folder]


def _load_or_create(keys_dir: Path, passphrase: bytes | None) -> bytes:
    path = keys_dir / KEY_FILE
    if not path.exists():
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        secret = base64.urlsafe_b64encode(os.urandom(32))
        data = seal_secret({"format": SEALED_FORMAT}, secret, passphrase) if passphrase else secret
        try:
            write_new(path, data)
        except FileExistsError:
            pass  # made meanwhile by another process
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path} must be readable by its owner only (chmod 600 {path})")
    raw = path.read_bytes().strip()
    sealed = raw.startswith(b"{")
    if sealed != bool(passphrase):
        raise KeyStoreError(f"{path}: sealed {'with' if sealed else 'without'} a passphrase, unlike the node's keys")
    if sealed:
        assert passphrase is not None
        try:
            body = json.loads(raw)
            if body.get("format") != SEALED_FORMAT:
                raise ValueError("unknown format")
            raw = unseal_secret(path, body, passphrase)
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyStoreError(f"{path} is not a usable key: {exc}") from None
    key = base64.urlsafe_b64decode(raw)
    if len(key) != 32:
        raise KeyStoreError(f"{path} does not hold a 32-byte key")
    return key


def passcode_hmac(keys_dir: Path, access_id: str, code: str) -> str:
    pepper = hmac.new(data_key(keys_dir), b"refnode client passcode v1", hashlib.sha256).digest()
    return hmac.new(pepper, f"{access_id}:{code}".encode(), hashlib.sha256).hexdigest()


def folder(data_dir: Path) -> Path:
    path = data_dir / "client-files"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _path(data_dir: Path, file_id: str) -> Path:
    if not _ID.match(file_id):
        raise ValueError("not a file id")
    return folder(data_dir) / file_id


def check_kind(name: str, data: bytes) -> Kind:
    """The kind the bytes prove to be (as ``node.crm.document_files`` checks uploads);
    ``CrmError`` (field ``file``) when they are not what the name says."""
    from node.crm.errors import CrmError

    kind = kind_of(name)
    if not data:
        raise CrmError("invalid", "The file is empty", "file")
    wrong = CrmError("invalid", f"The file is not a {kind.label}, whatever its name says", "file")
    if kind.magic:
        if not data.startswith(kind.magic):
            raise wrong
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise wrong from None
        if "\x00" in text:
            raise wrong
    if kind.member is not None:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                if kind.member not in archive.namelist():
                    raise wrong
        except (zipfile.BadZipFile, ValueError):
            raise wrong from None
    return kind


def seal(data_dir: Path, keys_dir: Path, file_id: str, data: bytes) -> str:
    """Store ``data`` sealed as ``file_id`` (blocking); its SHA-256."""
    nonce = os.urandom(12)
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    sealed = MAGIC + nonce + ChaCha20Poly1305(data_key(keys_dir)).encrypt(nonce, data, file_id.encode())
    path = _path(data_dir, file_id)
    write_new(path, sealed)
    return hashlib.sha256(data).hexdigest()


def unseal(data_dir: Path, keys_dir: Path, file_id: str, sha256: str) -> bytes:
    """The clear bytes of a stored file, checked (blocking); :class:`DamagedFile` else."""
    path = _path(data_dir, file_id)
    try:
        sealed = path.read_bytes()
    except FileNotFoundError:
        raise DamagedFile("the stored file is missing") from None
    if not sealed.startswith(MAGIC) or len(sealed) < len(MAGIC) + 12 + 16:
        raise DamagedFile("the stored file is not a sealed client file")
    nonce, body = sealed[len(MAGIC):len(MAGIC) + 12], sealed[len(MAGIC) + 12:]
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    try:
        data = ChaCha20Poly1305(data_key(keys_dir)).decrypt(nonce, body, file_id.encode())
    except InvalidTag:
        raise DamagedFile("the stored file fails its integrity check") from None
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), sha256):
        raise DamagedFile("the stored file does not match its SHA-256")
    return data


def remove(data_dir: Path, file_id: str) -> None:
    _path(data_dir, file_id).unlink(missing_ok=True)
