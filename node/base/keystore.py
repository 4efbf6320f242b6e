"""The node's private keys, on disk in ``<data_dir>/keys/`` and never in the database.

One file per key, created 0600 in a 0700 directory and never rewritten:

- Ed25519 signing keys (the identity key and the operational keys) and X25519 HPKE keys:
  PKCS#8 PEM; with a passphrase, that PEM sealed in a small JSON file (below).
- ML-KEM-768 + X25519 hybrid HPKE keys have no PKCS#8 form, so their secret (64-byte
  ML-KEM seed || 32-byte X25519 scalar) goes in a small JSON file: plain base64url, or
  sealed with ChaCha20-Poly1305 under a key derived from the passphrase with scrypt
  (salt, cost parameters and nonce stored next to the ciphertext).

Sealing is scrypt (N=2**15, r=8, p=1) and ChaCha20-Poly1305, with the header as associated
data. We do not use PKCS#8's own encryption: ``cryptography`` writes it with PBKDF2 at only
2048 iterations, far cheaper to brute-force.

``index.json`` (0600, no secrets) lists every key with its role, status and file. A
rotation adds a new key and marks the old one ``retired``; nothing is deleted. Retired
signing keys are published as retired so old receipts still verify; retired decryption
keys still open envelopes sealed to them before peers noticed the rotation. Dropping
them after a grace period is the caller's decision, made with ``retired_at``.

A :class:`KeyStore` in memory does not notice changes made on disk by another process:
whoever rotates keys from the CLI must have the server reload them.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from protocol.keys import CRV_MLKEM768_X25519, DecryptionKey, SigningKey, VerifyKey, fingerprint_of
from protocol.suites import PREFERENCE, SuiteId

KeyStatus = Literal["active", "retired"]
Role = Literal["identity", "signing", "encryption"]

INDEX_FILE = "index.json"
INDEX_FORMAT = "refnode-keystore/1"
HYBRID_FORMAT = "refnode-hybrid-key/1"
#: scrypt cost for sealing hybrid keys: 32 MiB and a few tenths of a second per derivation.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1

_SUITE_OF_CRV = {
    "X25519": SuiteId.X25519_CHACHA,
    CRV_MLKEM768_X25519: SuiteId.MLKEM768X25519_CHACHA,
}


class KeyStoreError(Exception):
    """The keys cannot be created or loaded: wrong passphrase, missing or unsafe files."""


@dataclass(frozen=True)
class KeyRecord:
    """One line of ``index.json``: a key's public facts, never its secret."""

    kid: str
    role: Role
    crv: str
    status: KeyStatus
    file: str
    created_at: str
    retired_at: str | None = None

    @property
    def suite(self) -> SuiteId | None:
        return _SUITE_OF_CRV.get(self.crv) if self.role == "encryption" else None


class KeyStore:
    """The node's identity key, operational signing keys and HPKE decryption keys."""

    def __init__(
        self,
        keys_dir: Path,
        passphrase: bytes | None,
        records: list[KeyRecord],
        signing_keys: dict[str, SigningKey],
        decryption_keys: dict[str, DecryptionKey],
    ) -> None:
        self._dir = keys_dir
        self._passphrase = passphrase
        self._records = records
        self._signing_keys = signing_keys
        self._decryption_keys = decryption_keys

    def __repr__(self) -> str:
        return f"KeyStore({str(self._dir)!r}, node_id={self.node_id!r})"

    # -- creating and loading ------------------------------------------------------------

    @classmethod
    def create(
        cls,
        keys_dir: Path,
        passphrase: bytes | None,
        enable_pq: bool,
        *,
        now: datetime | None = None,
    ) -> KeyStore:
        """Generate a new identity, an operational signing key and encryption keys."""
        keys_dir = Path(keys_dir)
        _check_passphrase(passphrase)
        if (keys_dir / INDEX_FILE).exists():
            raise KeyStoreError(f"{keys_dir} already holds keys; refusing to replace them")
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(keys_dir, 0o700)
        store = cls(keys_dir, passphrase, [], {}, {})
        when = _ts(now)
        store._add_signing_key("identity", when)
        store._add_signing_key("signing", when)
        store._add_decryption_key("X25519", when)
        if enable_pq:
            store._add_decryption_key(CRV_MLKEM768_X25519, when)
        store._write_index()
        return store

    @classmethod
    def load(cls, keys_dir: Path, passphrase: bytes | None) -> KeyStore:
        """Read the keys written by :meth:`create`. Raises :class:`KeyStoreError` if the
        passphrase is wrong or missing, or the files are missing or readable by others."""
        keys_dir = Path(keys_dir)
        index_path = keys_dir / INDEX_FILE
        if not index_path.is_file():
            raise KeyStoreError(f"no keys in {keys_dir} (run `refnode init` first)")
        _check_private(keys_dir)
        _check_private(index_path)
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            if index.get("format") != INDEX_FORMAT:
                raise ValueError(f"unknown format {index.get('format')!r}")
            records = [KeyRecord(**entry) for entry in index["keys"]]
            encrypted = bool(index["encrypted"])
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyStoreError(f"{index_path} is not a key index: {exc}") from None
        if encrypted and passphrase is None:
            raise KeyStoreError(f"the keys in {keys_dir} are encrypted: a passphrase is required")
        if not encrypted and passphrase is not None:
            raise KeyStoreError(
                f"the keys in {keys_dir} are not encrypted, but a passphrase was given"
            )
        _check_passphrase(passphrase)

        signing_keys: dict[str, SigningKey] = {}
        decryption_keys: dict[str, DecryptionKey] = {}
        for record in records:
            path = keys_dir / record.file
            if path.name != record.file or not path.is_file():
                raise KeyStoreError(f"key file {record.file!r} listed in {index_path} is missing")
            _check_private(path)
            if record.role in ("identity", "signing"):
                key = SigningKey(_read_pem(path, passphrase, ed25519.Ed25519PrivateKey))
                signing_keys[record.kid] = key
            elif record.crv == "X25519":
                xkey = _read_pem(path, passphrase, x25519.X25519PrivateKey)
                dkey = DecryptionKey.x25519(xkey.private_bytes_raw())
                decryption_keys[record.kid] = dkey
            else:
                dkey = _read_hybrid(path, passphrase, record.kid)
                decryption_keys[record.kid] = dkey
            key_obj = signing_keys.get(record.kid) or decryption_keys[record.kid]
            if key_obj.kid != record.kid:
                raise KeyStoreError(f"{path} does not hold key {record.kid} listed in {index_path}")
        store = cls(keys_dir, passphrase, records, signing_keys, decryption_keys)
        store._check_roles()
        return store

    # -- what the node uses --------------------------------------------------------------

    @property
    def keys_dir(self) -> Path:
        return self._dir

    @property
    def records(self) -> tuple[KeyRecord, ...]:
        return tuple(self._records)

    @property
    def identity(self) -> SigningKey:
        """The identity key: it signs discovery documents and key rotations; its
        thumbprint is the node id."""
        return self._signing_keys[self._one("identity").kid]

    @property
    def node_id(self) -> str:
        return self.identity.kid

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.node_id)

    @property
    def signing(self) -> SigningKey:
        """The current operational signing key: it signs envelopes and receipts."""
        return self._signing_keys[self._one("signing").kid]

    @property
    def signing_entries(self) -> list[tuple[VerifyKey, KeyStatus]]:
        """Operational signing keys, active first, for ``build_discovery(signing=...)``."""
        records = sorted(self._of_role("signing"), key=lambda r: r.status != "active")
        return [(self._signing_keys[r.kid].public, r.status) for r in records]

    @property
    def decryption_keys(self) -> dict[str, DecryptionKey]:
        """Every decryption key by kid, retired ones included (they still open)."""
        return dict(self._decryption_keys)

    @property
    def encryption_entries(self) -> list[tuple[SuiteId, DecryptionKey, KeyStatus]]:
        """Encryption keys with their suite and status, active first and in our suite
        preference, for ``build_discovery(encryption=...)``."""
        order = {suite: i for i, suite in enumerate(PREFERENCE)}
        records = sorted(
            self._of_role("encryption"),
            key=lambda r: (r.status != "active", order.get(r.suite, len(order)) if r.suite else 0),
        )
        return [(r.suite, self._decryption_keys[r.kid], r.status) for r in records if r.suite]

    @property
    def suites(self) -> tuple[SuiteId, ...]:
        """The suites we have an active key for, in our preference."""
        active = {r.suite for r in self._of_role("encryption") if r.status == "active"}
        return tuple(s for s in PREFERENCE if s in active)

    # -- rotation ------------------------------------------------------------------------

    def rotate_signing(self, *, now: datetime | None = None) -> SigningKey:
        """Add a new operational signing key and retire the current one."""
        when = _ts(now)
        old = self._one("signing")
        new = self._add_signing_key("signing", when)
        self._retire([old.kid], when)
        self._write_index()
        return new

    def rotate_encryption(
        self, *, enable_pq: bool | None = None, now: datetime | None = None
    ) -> list[tuple[SuiteId, DecryptionKey]]:
        """Add a new key for each active encryption suite and retire the old ones.
        ``enable_pq`` adds (True) or drops (False) the hybrid suite; None keeps the set."""
        when = _ts(now)
        active = [r for r in self._of_role("encryption") if r.status == "active"]
        crvs = [r.crv for r in active]
        if enable_pq is True and CRV_MLKEM768_X25519 not in crvs:
            crvs.append(CRV_MLKEM768_X25519)
        elif enable_pq is False:
            crvs = [c for c in crvs if c != CRV_MLKEM768_X25519]
        if "X25519" not in crvs:
            crvs.append("X25519")  # the mandatory suite
        added = [self._add_decryption_key(crv, when) for crv in crvs]
        self._retire([r.kid for r in active], when)
        self._write_index()
        return [(_SUITE_OF_CRV[key.crv], key) for key in added]

    # -- internals -----------------------------------------------------------------------

    def _of_role(self, role: Role) -> list[KeyRecord]:
        return [r for r in self._records if r.role == role]

    def _one(self, role: Role) -> KeyRecord:
        active = [r for r in self._of_role(role) if r.status == "active"]
        if len(active) != 1:
            raise KeyStoreError(
                f"{self._dir / INDEX_FILE}: expected one active {role} key, found {len(active)}"
            )
        return active[0]

    def _check_roles(self) -> None:
        self._one("identity")
        self._one("signing")
        if "X25519" not in {r.crv for r in self._of_role("encryption") if r.status == "active"}:
            raise KeyStoreError(f"{self._dir / INDEX_FILE}: no active X25519 encryption key")

    def _retire(self, kids: list[str], when: str) -> None:
        self._records = [
            replace(r, status="retired", retired_at=when) if r.kid in kids else r
            for r in self._records
        ]

    def _add_signing_key(self, role: Role, when: str) -> SigningKey:
        key = SigningKey(ed25519.Ed25519PrivateKey.generate())
        filename = f"{role}-{key.kid}.pem"
        _write_private(self._dir / filename, _pem(key.key, self._passphrase))
        self._records.append(KeyRecord(key.kid, role, "Ed25519", "active", filename, when))
        self._signing_keys[key.kid] = key
        return key

    def _add_decryption_key(self, crv: str, when: str) -> DecryptionKey:
        xkey = x25519.X25519PrivateKey.generate()
        if crv == "X25519":
            key = DecryptionKey.x25519(xkey.private_bytes_raw())
            filename = f"x25519-{key.kid}.pem"
            data = _pem(xkey, self._passphrase)
        else:
            key = DecryptionKey.mlkem768_x25519(os.urandom(64) + xkey.private_bytes_raw())
            filename = f"mlkem768x25519-{key.kid}.json"
            data = _seal_hybrid(key, self._passphrase)
        _write_private(self._dir / filename, data)
        self._records.append(KeyRecord(key.kid, "encryption", crv, "active", filename, when))
        self._decryption_keys[key.kid] = key
        return key

    def _write_index(self) -> None:
        index = {
            "format": INDEX_FORMAT,
            "node_id": self.node_id,
            "encrypted": self._passphrase is not None,
            "keys": [asdict(r) for r in self._records],
        }
        data = (json.dumps(index, indent=2) + "\n").encode("utf-8")
        tmp = self._dir / (INDEX_FILE + ".tmp")
        tmp.unlink(missing_ok=True)
        _write_private(tmp, data)
        os.replace(tmp, self._dir / INDEX_FILE)
        _fsync_dir(self._dir)


# -- files ----------------------------------------------------------------------------------


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist) readable by us alone, and make it durable."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyStoreError(
            f"{path} is accessible by other users (mode {mode:04o}); "
            f"run: chmod {'700' if path.is_dir() else '600'} {path}"
        )


def _check_passphrase(passphrase: bytes | None) -> None:
    if passphrase is not None and not passphrase:
        raise KeyStoreError("the key passphrase is empty; give a real one or none")


def _ts(now: datetime | None) -> str:
    moment = now if now is not None else datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- PKCS#8 (Ed25519, X25519) ---------------------------------------------------------------


SEALED_PEM_FORMAT = "refnode-sealed-pem/1"


def _pem(
    key: ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey, passphrase: bytes | None
) -> bytes:
    """PKCS#8 PEM; with a passphrase, sealed with scrypt + ChaCha20-Poly1305 (the same
    construction as the hybrid key), not PKCS#8's own PBKDF2 at 2048 iterations."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    if not passphrase:
        return pem
    header: dict[str, Any] = {"format": SEALED_PEM_FORMAT}
    return _seal(header, pem, passphrase)


def _read_pem(path: Path, passphrase: bytes | None, kind: type[Any]) -> Any:
    data = path.read_bytes()
    sealed = data.lstrip().startswith(b"{")
    if sealed != (passphrase is not None):
        raise KeyStoreError(f"{path}: encryption does not match the key index")
    try:
        if sealed:
            assert passphrase is not None
            body = json.loads(data)
            if body.get("format") != SEALED_PEM_FORMAT:
                raise ValueError("unknown format")
            data = _unseal(path, body, passphrase)
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyStoreError(f"{path} is not a usable key: {exc}") from None
    if not isinstance(key, kind):
        raise KeyStoreError(f"{path} does not hold an {kind.__name__}")
    return key


def _seal(header: dict[str, Any], secret: bytes, passphrase: bytes) -> bytes:
    salt, nonce = os.urandom(16), os.urandom(12)
    header = header | {
        "kdf": {"name": "scrypt", "salt": _b64(salt), "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
        "aead": "ChaCha20-Poly1305",
    }
    sealed = ChaCha20Poly1305(_derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)).encrypt(
        nonce, secret, _aad(header)
    )
    body = header | {"nonce": _b64(nonce), "ciphertext": _b64(sealed)}
    return (json.dumps(body, indent=2) + "\n").encode("utf-8")


def _unseal(path: Path, body: dict[str, Any], passphrase: bytes) -> bytes:
    header = {k: v for k, v in body.items() if k not in ("nonce", "ciphertext")}
    kdf = header["kdf"]
    if kdf.get("name") != "scrypt" or header["aead"] != "ChaCha20-Poly1305":
        raise ValueError("unknown key derivation or cipher")
    derived = _derive(passphrase, _unb64(kdf["salt"]), int(kdf["n"]), int(kdf["r"]), int(kdf["p"]))
    try:
        return ChaCha20Poly1305(derived).decrypt(_unb64(body["nonce"]), _unb64(body["ciphertext"]), _aad(header))
    except InvalidTag:
        raise KeyStoreError(
            f"wrong passphrase for the keys in {path.parent} (or {path.name} is damaged)"
        ) from None


# -- the hybrid key's own file --------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _aad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _derive(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)


def _seal_hybrid(key: DecryptionKey, passphrase: bytes | None) -> bytes:
    header: dict[str, Any] = {"format": HYBRID_FORMAT, "crv": key.crv, "kid": key.kid}
    if passphrase is None:
        return (json.dumps(header | {"secret": _b64(key.secret)}, indent=2) + "\n").encode("utf-8")
    return _seal(header, key.secret, passphrase)


def _read_hybrid(path: Path, passphrase: bytes | None, kid: str) -> DecryptionKey:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        if body.get("format") != HYBRID_FORMAT or body.get("crv") != CRV_MLKEM768_X25519:
            raise ValueError("unknown format")
        if "ciphertext" in body:
            if passphrase is None:
                raise KeyStoreError(f"{path}: encryption does not match the key index")
            secret = _unseal(path, body, passphrase)
        else:
            if passphrase is not None:
                raise KeyStoreError(f"{path}: encryption does not match the key index")
            secret = _unb64(body["secret"])
        if len(secret) != 96:
            raise ValueError("the secret must be 96 bytes")
        key = DecryptionKey.mlkem768_x25519(secret)
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyStoreError(f"{path} is not a usable hybrid key: {exc}") from None
    if key.kid != kid or body.get("kid") != kid:
        raise KeyStoreError(f"{path} does not hold key {kid}")
    return key
