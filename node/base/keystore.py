"""The node's private keys, on disk in ``<data_dir>/keys/`` and never in the database.

One file per key, created 0600 in a 0700 directory and never rewritten; what each file
holds, and how a passphrase seals it, is :mod:`node.base.key_files`.

``index.json`` (0600, no secrets) lists every key with its role, status and file. A
rotation adds a new key and marks the old one ``retired``; nothing is deleted. Retired
signing keys are published as retired so old receipts still verify; retired decryption
keys still open envelopes sealed to them before peers noticed the rotation. Dropping
them after a grace period is the caller's decision, made with ``retired_at``.

A :class:`KeyStore` in memory does not notice changes made on disk by another process:
whoever rotates keys from the CLI must have the server reload them.

Loading checks the index and every file's presence and mode; the private keys themselves
are read (with ``cryptography``, whose Rust bindings are some 7 MiB) when one is first
used, so that a node which serves a discovery document signed before (see
``node.federation.own_discovery``) and has received nothing does not load it. Sealed keys are
opened at load: a wrong passphrase is told at start, and unsealing needs ``cryptography``
anyway. What the node needs without its private keys, its node id, suites and the kid of
each key, the index says.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from node.base.files import replace_file, write_new
from node.base.key_files import KeyStoreError, hybrid_bytes, pem_bytes, read_hybrid, read_pem
from protocol.keys import CRV_MLKEM768_X25519, DecryptionKey, SigningKey, VerifyKey, fingerprint_of
from protocol.suites import PREFERENCE, SuiteId

KeyStatus = Literal["active", "retired"]
Role = Literal["identity", "signing", "encryption"]

INDEX_FILE = "index.json"
INDEX_FORMAT = "refnode-keystore/1"

_SUITE_OF_CRV = {
    "X25519": SuiteId.X25519_CHACHA,
    CRV_MLKEM768_X25519: SuiteId.MLKEM768X25519_CHACHA,
}


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
        signing_keys: dict[str, SigningKey] | None,
        decryption_keys: dict[str, DecryptionKey] | None,
    ) -> None:
        """``signing_keys`` and ``decryption_keys`` None: read from the files on first use."""
        self._dir = keys_dir
        self._passphrase = passphrase
        self._records = records
        self._signing_keys = signing_keys or {}
        self._decryption_keys = decryption_keys or {}
        self._opened = signing_keys is not None and decryption_keys is not None
        self._opening = threading.Lock()

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
        for record in records:
            path = keys_dir / record.file
            if path.name != record.file or not path.is_file():
                raise KeyStoreError(f"key file {record.file!r} listed in {index_path} is missing")
            _check_private(path)
        store = cls(keys_dir, passphrase, records, None, None)
        store._check_roles()
        if passphrase is not None:
            store._open()
        return store

    def _open(self) -> None:
        """Read every private key from its file, once (see the module's doc on when)."""
        from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

        with self._opening:
            if self._opened:
                return
            signing_keys: dict[str, SigningKey] = {}
            decryption_keys: dict[str, DecryptionKey] = {}
            for record in self._records:
                path = self._dir / record.file
                if record.role in ("identity", "signing"):
                    key = SigningKey(read_pem(path, self._passphrase, ed25519.Ed25519PrivateKey))
                    signing_keys[record.kid] = key
                elif record.crv == "X25519":
                    xkey = read_pem(path, self._passphrase, x25519.X25519PrivateKey)
                    decryption_keys[record.kid] = DecryptionKey.x25519(xkey.private_bytes_raw())
                else:
                    decryption_keys[record.kid] = read_hybrid(path, self._passphrase, record.kid)
                key_obj = signing_keys.get(record.kid) or decryption_keys[record.kid]
                if key_obj.kid != record.kid:
                    raise KeyStoreError(
                        f"{path} does not hold key {record.kid} listed in {self._dir / INDEX_FILE}"
                    )
            self._signing_keys, self._decryption_keys = signing_keys, decryption_keys
            self._opened = True

    def _signing_key(self, kid: str) -> SigningKey:
        if not self._opened:
            self._open()
        return self._signing_keys[kid]

    def _decryption_keys_opened(self) -> dict[str, DecryptionKey]:
        if not self._opened:
            self._open()
        return self._decryption_keys

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
        return self._signing_key(self._one("identity").kid)

    @property
    def node_id(self) -> str:
        return self._one("identity").kid

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.node_id)

    @property
    def signing(self) -> SigningKey:
        """The current operational signing key: it signs envelopes and receipts."""
        return self._signing_key(self._one("signing").kid)

    @property
    def signing_kid(self) -> str:
        """The kid of :attr:`signing`, from the index (no private key is read)."""
        return self._one("signing").kid

    @property
    def signing_entries(self) -> list[tuple[VerifyKey, KeyStatus]]:
        """Operational signing keys, active first, for ``build_discovery(signing=...)``."""
        records = sorted(self._of_role("signing"), key=lambda r: r.status != "active")
        return [(self._signing_key(r.kid).public, r.status) for r in records]

    @property
    def decryption_keys(self) -> dict[str, DecryptionKey]:
        """Every decryption key by kid, retired ones included (they still open)."""
        return dict(self._decryption_keys_opened())

    @property
    def encryption_entries(self) -> list[tuple[SuiteId, DecryptionKey, KeyStatus]]:
        """Encryption keys with their suite and status, active first and in our suite
        preference, for ``build_discovery(encryption=...)``."""
        order = {suite: i for i, suite in enumerate(PREFERENCE)}
        records = sorted(
            self._of_role("encryption"),
            key=lambda r: (r.status != "active", order.get(r.suite, len(order)) if r.suite else 0),
        )
        keys = self._decryption_keys_opened()
        return [(r.suite, keys[r.kid], r.status) for r in records if r.suite]

    @property
    def suites(self) -> tuple[SuiteId, ...]:
        """The suites we have an active key for, in our preference."""
        active = {r.suite for r in self._of_role("encryption") if r.status == "active"}
        return tuple(s for s in PREFERENCE if s in active)

    # -- rotation ------------------------------------------------------------------------

    def rotate_signing(self, *, now: datetime | None = None) -> SigningKey:
        """Add a new operational signing key and retire the current one."""
        self._open()  # first, so that a first reading in another thread cannot miss the new key
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
        self._open()
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
        from cryptography.hazmat.primitives.asymmetric import ed25519

        key = SigningKey(ed25519.Ed25519PrivateKey.generate())
        filename = f"{role}-{key.kid}.pem"
        write_new(self._dir / filename, pem_bytes(key.key, self._passphrase))
        self._records.append(KeyRecord(key.kid, role, "Ed25519", "active", filename, when))
        self._signing_keys[key.kid] = key
        return key

    def _add_decryption_key(self, crv: str, when: str) -> DecryptionKey:
        from cryptography.hazmat.primitives.asymmetric import x25519

        if crv == "X25519":
            xkey = x25519.X25519PrivateKey.generate()
            key = DecryptionKey.x25519(xkey.private_bytes_raw())
            filename = f"x25519-{key.kid}.pem"
            data = pem_bytes(xkey, self._passphrase)
        else:
            key = DecryptionKey.mlkem768_x25519(os.urandom(32))  # the X-Wing seed
            filename = f"mlkem768x25519-{key.kid}.json"
            data = hybrid_bytes(key, self._passphrase)
        write_new(self._dir / filename, data)
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
        replace_file(self._dir / INDEX_FILE, data)


# -- files ----------------------------------------------------------------------------------


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
