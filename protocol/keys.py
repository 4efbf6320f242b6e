"""Node identity: signing and encryption keys, key ids, node ids and fingerprints.

- A node signs with Ed25519 (RFC 8032) and receives encrypted payloads with HPKE
  (RFC 9180) keys; see :mod:`protocol.suites`.
- Every public key is published as a JWK (RFC 7517, RFC 8037). Its key id ("kid") is its
  JWK thumbprint (RFC 7638), so anyone can recompute it.
- The **node id** is the thumbprint of the node's *identity* signing key, the first one
  it ever had. It never changes; later signing keys are introduced by a signed
  ``key-rotation`` message, so the id stays the same across rotations.
- The **fingerprint** is the node id's digest in a form two admins can read to each other
  over the phone: the first 15 bytes of SHA-256 of the node id's ASCII text, base32, six
  groups of four joined by "-".

Nothing here generates randomness: callers pass seeds or key objects, so that tests and
test vectors are repeatable.

``cryptography`` is imported where a key object is first made, not with this module: its
Rust bindings are some 7 MiB that a node which has signed nothing yet does not need (an
idle node serves a discovery document it signed before; see ``node.federation.runtime``).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Final, Literal

from protocol.encoding import b64u_decode, b64u_encode, dumps_canonical
from protocol.errors import RemoteProtocolError
from protocol.wire import ErrorCode

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.hpke import (
        MLKEM768X25519PrivateKey,
        MLKEM768X25519PublicKey,
    )

#: JWK "crv" of the post-quantum hybrid HPKE key (X-Wing): ML-KEM-768 public key (1184
#: bytes) followed by the X25519 public key (32 bytes), as in draft-ietf-hpke-pq.
CRV_MLKEM768_X25519: Final = "MLKEM768-X25519"
_MLKEM768_PUB_LEN = 1184
#: An X-Wing private key (decapsulation key) is a 32-byte seed, draft-connolly-cfrg-xwing-kem.
XWING_SEED_LEN: Final = 32
#: The expanded form, ML-KEM-768 seed (d || z) then X25519 scalar. Nodes created before the
#: seed became the key's form stored this; it never travels and is not in any vector.
_XWING_EXPANDED_LEN = 96


def xwing_expand(seed: bytes) -> tuple[bytes, bytes]:
    """X-Wing's ``expandDecapsulationKey``: SHAKE256(seed, 96 bytes) split into the 64-byte
    ML-KEM-768 seed ``d || z`` (FIPS 203 ``KeyGen_internal(d, z)``) and the X25519 scalar."""
    if len(seed) != XWING_SEED_LEN:
        raise ValueError("an X-Wing decapsulation key is a 32-byte seed")
    expanded = hashlib.shake_256(seed).digest(_XWING_EXPANDED_LEN)
    return expanded[:64], expanded[64:]

Jwk = dict[str, str]


def jwk_thumbprint(jwk: Jwk) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of an OKP JWK."""
    required = {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}
    return b64u_encode(hashlib.sha256(dumps_canonical(required)).digest())


def fingerprint_of(node_id: str) -> str:
    """Human-comparable form of a node id, e.g. ``RT3Y-7KQ2-...`` (six groups of four)."""
    digest = hashlib.sha256(node_id.encode("ascii")).digest()[:15]
    text = base64.b32encode(digest).decode("ascii")
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


@dataclass(frozen=True)
class VerifyKey:
    """A peer's public Ed25519 key (its 32 raw bytes), with its key id. The cryptography
    key object is made with the first verification, and kept."""

    kid: str
    raw: bytes

    @classmethod
    def from_jwk(cls, jwk: Jwk) -> VerifyKey:
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            raise RemoteProtocolError(ErrorCode.MALFORMED, "signing key must be an Ed25519 OKP JWK")
        raw = b64u_decode(jwk.get("x", ""), what="jwk.x")
        if len(raw) != 32:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "Ed25519 public key must be 32 bytes")
        return cls(kid=jwk_thumbprint(jwk), raw=raw)

    @cached_property
    def key(self) -> ed25519.Ed25519PublicKey:
        from cryptography.hazmat.primitives.asymmetric import ed25519

        return ed25519.Ed25519PublicKey.from_public_bytes(self.raw)

    def jwk(self) -> Jwk:
        return {"kty": "OKP", "crv": "Ed25519", "x": b64u_encode(self.raw)}

    def verify(self, signature: bytes, data: bytes) -> None:
        """Raise ``bad_signature`` unless ``signature`` is valid over ``data``."""
        try:
            self.key.verify(signature, data)
        except _invalid_signature():  # looked up only when verify raised: no import per call
            raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "signature does not verify") from None


def _invalid_signature() -> type[Exception]:
    from cryptography.exceptions import InvalidSignature

    return InvalidSignature


@dataclass(frozen=True)
class SigningKey:
    """Our own Ed25519 private key."""

    key: ed25519.Ed25519PrivateKey

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        from cryptography.hazmat.primitives.asymmetric import ed25519

        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(seed))

    def seed(self) -> bytes:
        return self.key.private_bytes_raw()

    @cached_property
    def public(self) -> VerifyKey:
        raw = self.key.public_key().public_bytes_raw()
        return VerifyKey(kid=jwk_thumbprint({"kty": "OKP", "crv": "Ed25519", "x": b64u_encode(raw)}), raw=raw)

    @cached_property
    def kid(self) -> str:
        return self.public.kid

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)


KemName = Literal["X25519", "MLKEM768-X25519"]


@dataclass(frozen=True)
class EncryptionPublicKey:
    """A peer's public HPKE key: X25519, or the ML-KEM-768 + X25519 hybrid, as its raw
    bytes. The cryptography key object is made with the first use, and kept."""

    kid: str
    crv: KemName
    raw: bytes

    @classmethod
    def from_jwk(cls, jwk: Jwk, *, trusted: bool = False) -> EncryptionPublicKey:
        """The key of ``jwk``, its bytes checked now (an ML-KEM key's by cryptography);
        ``trusted`` when it was checked so before (a stored document's), to leave the key
        object, and cryptography, to the first use."""
        if jwk.get("kty") != "OKP":
            raise RemoteProtocolError(ErrorCode.MALFORMED, "encryption key must be an OKP JWK")
        raw = b64u_decode(jwk.get("x", ""), what="jwk.x")
        crv = jwk.get("crv")
        if crv == "X25519" and len(raw) == 32:
            made = cls(jwk_thumbprint(jwk), "X25519", raw)
        elif crv == CRV_MLKEM768_X25519 and len(raw) == _MLKEM768_PUB_LEN + 32:
            made = cls(jwk_thumbprint(jwk), CRV_MLKEM768_X25519, raw)
        else:
            raise RemoteProtocolError(ErrorCode.MALFORMED, f"unusable encryption key (crv {crv!r})")
        if not trusted:
            try:
                made.key  # noqa: B018 (made now, so that bad bytes are told now)
            except ValueError:
                raise RemoteProtocolError(ErrorCode.MALFORMED, f"unusable encryption key (crv {crv!r})") from None
        return made

    @cached_property
    def key(self) -> x25519.X25519PublicKey | MLKEM768X25519PublicKey:
        from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
        from cryptography.hazmat.primitives.hpke import MLKEM768X25519PublicKey

        if self.crv == "X25519":
            return x25519.X25519PublicKey.from_public_bytes(self.raw)
        return MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(self.raw[:_MLKEM768_PUB_LEN]),
            x25519.X25519PublicKey.from_public_bytes(self.raw[_MLKEM768_PUB_LEN:]),
        )

    def jwk(self) -> Jwk:
        return {"kty": "OKP", "crv": self.crv, "x": b64u_encode(self.raw)}


@dataclass(frozen=True)
class DecryptionKey:
    """Our own HPKE private key. ``secret`` is the X25519 scalar (32 bytes), or for the
    hybrid the 32-byte X-Wing seed (draft-connolly-cfrg-xwing-kem), the form every X-Wing
    library loads. A hybrid key a node stored before that holds the 96 expanded bytes
    instead (ML-KEM-768 seed, then X25519 scalar); it works, but is never published."""

    crv: KemName
    secret: bytes

    @classmethod
    def x25519(cls, secret: bytes) -> DecryptionKey:
        return cls("X25519", secret)

    @classmethod
    def mlkem768_x25519(cls, seed: bytes) -> DecryptionKey:
        """The hybrid key of a 32-byte X-Wing seed."""
        if len(seed) != XWING_SEED_LEN:
            raise ValueError("an MLKEM768-X25519 private key is a 32-byte X-Wing seed")
        return cls(CRV_MLKEM768_X25519, seed)

    @classmethod
    def mlkem768_x25519_expanded(cls, secret: bytes) -> DecryptionKey:
        """A hybrid key stored in the expanded form of older nodes (96 bytes)."""
        if len(secret) != _XWING_EXPANDED_LEN:
            raise ValueError("an expanded MLKEM768-X25519 key is 96 bytes")
        return cls(CRV_MLKEM768_X25519, secret)

    def _hybrid_parts(self) -> tuple[mlkem.MLKEM768PrivateKey, X25519PrivateKey]:
        from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

        if len(self.secret) == XWING_SEED_LEN:
            ml_seed, scalar = xwing_expand(self.secret)
        else:
            ml_seed, scalar = self.secret[:64], self.secret[64:]
        return (
            mlkem.MLKEM768PrivateKey.from_seed_bytes(ml_seed),
            x25519.X25519PrivateKey.from_private_bytes(scalar),
        )

    def private_key(self) -> X25519PrivateKey | MLKEM768X25519PrivateKey:
        return self._private_key

    @cached_property
    def _private_key(self) -> X25519PrivateKey | MLKEM768X25519PrivateKey:
        # Built once: rebuilding the key object costs as much as a third of a decryption.
        from cryptography.hazmat.primitives.asymmetric import x25519
        from cryptography.hazmat.primitives.hpke import MLKEM768X25519PrivateKey

        if self.crv == "X25519":
            return x25519.X25519PrivateKey.from_private_bytes(self.secret)
        return MLKEM768X25519PrivateKey(*self._hybrid_parts())

    @cached_property
    def public(self) -> EncryptionPublicKey:
        from cryptography.hazmat.primitives.asymmetric import x25519

        if self.crv == "X25519":
            raw = x25519.X25519PrivateKey.from_private_bytes(self.secret).public_key().public_bytes_raw()
        else:
            ml, xk = self._hybrid_parts()
            raw = ml.public_key().public_bytes_raw() + xk.public_key().public_bytes_raw()
        return EncryptionPublicKey.from_jwk({"kty": "OKP", "crv": self.crv, "x": b64u_encode(raw)})

    @cached_property
    def kid(self) -> str:
        return self.public.kid


def node_id_of(identity: VerifyKey) -> str:
    """The node id: the RFC 7638 thumbprint of the node's identity signing key."""
    return identity.kid
