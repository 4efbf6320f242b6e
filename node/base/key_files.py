"""The format of each key file, and its sealing under a passphrase.

- Ed25519 signing keys (the identity key and the operational keys) and X25519 HPKE keys:
  PKCS#8 PEM; with a passphrase, that PEM sealed in a small JSON file (below).
- ML-KEM-768 + X25519 hybrid (X-Wing) HPKE keys have no PKCS#8 form, so their secret
  (the 32-byte X-Wing seed; nodes made before it was the key's form hold the 96 expanded
  bytes, ML-KEM seed || X25519 scalar) goes in a small JSON file: plain base64url, or
  sealed with ChaCha20-Poly1305 under a key derived from the passphrase with scrypt
  (salt, cost parameters and nonce stored next to the ciphertext).

Sealing is scrypt (N=2**15, r=8, p=1) and ChaCha20-Poly1305, with the header as associated
data. We do not use PKCS#8's own encryption: ``cryptography`` writes it with PBKDF2 at only
2048 iterations, far cheaper to brute-force.

``cryptography`` is imported when a key is written, read or unsealed, not with this module
(see :mod:`node.base.keystore` on why a node may start without it).

Where the files live, and which keys the node has, is :mod:`node.base.keystore`.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocol.keys import CRV_MLKEM768_X25519, DecryptionKey

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

HYBRID_FORMAT = "refnode-hybrid-key/1"
SEALED_PEM_FORMAT = "refnode-sealed-pem/1"
#: scrypt cost for sealing hybrid keys: 32 MiB and a few tenths of a second per derivation.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1


class KeyStoreError(Exception):
    """The keys cannot be created or loaded: wrong passphrase, missing or unsafe files."""


# -- PKCS#8 (Ed25519, X25519) ---------------------------------------------------------------


def pem_bytes(
    key: ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey, passphrase: bytes | None
) -> bytes:
    """PKCS#8 PEM; with a passphrase, sealed with scrypt + ChaCha20-Poly1305 (the same
    construction as the hybrid key), not PKCS#8's own PBKDF2 at 2048 iterations."""
    from cryptography.hazmat.primitives import serialization

    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    if not passphrase:
        return pem
    header: dict[str, Any] = {"format": SEALED_PEM_FORMAT}
    return _seal(header, pem, passphrase)


def read_pem(path: Path, passphrase: bytes | None, kind: type[Any]) -> Any:
    from cryptography.hazmat.primitives import serialization

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


# -- sealing under a passphrase -------------------------------------------------------------


def seal_secret(header: dict[str, Any], secret: bytes, passphrase: bytes) -> bytes:
    """Any other secret kept with the keys (the client portal's data key), sealed as they are."""
    return _seal(header, secret, passphrase)


def unseal_secret(path: Path, body: dict[str, Any], passphrase: bytes) -> bytes:
    return _unseal(path, body, passphrase)


def _seal(header: dict[str, Any], secret: bytes, passphrase: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

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
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

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


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _aad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _derive(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)


# -- the hybrid key's own file --------------------------------------------------------------


def hybrid_bytes(key: DecryptionKey, passphrase: bytes | None) -> bytes:
    header: dict[str, Any] = {"format": HYBRID_FORMAT, "crv": key.crv, "kid": key.kid}
    if passphrase is None:
        return (json.dumps(header | {"secret": _b64(key.secret)}, indent=2) + "\n").encode("utf-8")
    return _seal(header, key.secret, passphrase)


def read_hybrid(path: Path, passphrase: bytes | None, kid: str) -> DecryptionKey:
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
        # 32 bytes: the X-Wing seed (every key made today). 96: the expanded form that
        # nodes made before the seed became the key's form; still loaded, never written.
        if len(secret) == 32:
            key = DecryptionKey.mlkem768_x25519(secret)
        elif len(secret) == 96:
            key = DecryptionKey.mlkem768_x25519_expanded(secret)
        else:
            raise ValueError("the secret must be a 32-byte X-Wing seed (or 96 expanded bytes)")
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyStoreError(f"{path} is not a usable hybrid key: {exc}") from None
    if key.kid != kid or body.get("kid") != kid:
        raise KeyStoreError(f"{path} does not hold key {kid}")
    return key
