"""HPKE cipher suites (RFC 9180, base mode) and how two nodes pick one.

The payload of every envelope is sealed to one of the recipient's encryption keys with
single-shot HPKE. The HPKE ``info`` binds the ciphertext to the protocol, the sender,
the recipient and the envelope id, so a recipient cannot pass what it received on to a
third node as if it had been sent there: the third node would derive a different key.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING

from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.keys import DecryptionKey, EncryptionPublicKey
from protocol.wire import ErrorCode

if TYPE_CHECKING:
    from cryptography.hazmat.primitives import hpke


class SuiteId(StrEnum):
    #: Mandatory to implement: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305.
    X25519_CHACHA = "X25519-HKDF-SHA256-CHACHA20POLY1305"
    #: Optional post-quantum hybrid: ML-KEM-768 + X25519, HKDF-SHA256, ChaCha20-Poly1305.
    MLKEM768X25519_CHACHA = "MLKEM768X25519-HKDF-SHA256-CHACHA20POLY1305"


MANDATORY_SUITE = SuiteId.X25519_CHACHA


@dataclass(frozen=True)
class SuiteSpec:
    id: SuiteId
    crv: str  # the JWK "crv" of keys used with it

    @cached_property
    def suite(self) -> hpke.Suite:
        """cryptography's suite, made with the first seal or open (see protocol.keys on
        why cryptography is not imported with this module)."""
        from cryptography.hazmat.primitives import hpke

        kem = hpke.KEM.X25519 if self.crv == "X25519" else hpke.KEM.MLKEM768_X25519
        return hpke.Suite(kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


SUITES: dict[SuiteId, SuiteSpec] = {
    SuiteId.X25519_CHACHA: SuiteSpec(SuiteId.X25519_CHACHA, "X25519"),
    SuiteId.MLKEM768X25519_CHACHA: SuiteSpec(SuiteId.MLKEM768X25519_CHACHA, "MLKEM768-X25519"),
}

#: Our preference when the recipient offers several suites: strongest first.
PREFERENCE: tuple[SuiteId, ...] = (SuiteId.MLKEM768X25519_CHACHA, SuiteId.X25519_CHACHA)


def parse_suite(name: str) -> SuiteId:
    try:
        return SuiteId(name)
    except ValueError:
        raise RemoteProtocolError(
            ErrorCode.UNSUPPORTED_SUITE,
            f"unknown cipher suite {name!r}",
            supported=[s.value for s in SuiteId],
        ) from None


def hpke_info(sender: str, recipient: str, envelope_id: str) -> bytes:
    """The HPKE ``info``: ``"refnode/1 payload" 0x00 from 0x00 to 0x00 id`` in UTF-8."""
    return b"\x00".join(
        [b"refnode/1 payload", sender.encode(), recipient.encode(), envelope_id.encode()]
    )


def choose_suite(
    ours: tuple[SuiteId, ...], theirs: list[tuple[SuiteId, EncryptionPublicKey]]
) -> tuple[SuiteId, EncryptionPublicKey]:
    """Pick the first suite in our preference that we enable and the peer offers a key for."""
    offered = {suite: key for suite, key in theirs}
    for suite in PREFERENCE:
        if suite in ours and suite in offered:
            return suite, offered[suite]
    raise LocalProtocolError(
        ErrorCode.UNSUPPORTED_SUITE,
        "no cipher suite in common with the peer",
        ours=[s.value for s in ours],
        theirs=[s.value for s in offered],
    )


def seal(suite: SuiteId, key: EncryptionPublicKey, plaintext: bytes, info: bytes) -> bytes:
    """HPKE single-shot seal; the result is ``enc || ciphertext``. Randomised."""
    spec = SUITES[suite]
    if key.crv != spec.crv:
        raise LocalProtocolError(ErrorCode.UNSUPPORTED_SUITE, f"{key.crv} key cannot be used with {suite}")
    return spec.suite.encrypt(plaintext, key.key, info=info)


def open_sealed(suite: SuiteId, key: DecryptionKey, sealed: bytes, info: bytes) -> bytes:
    """HPKE single-shot open. Any failure is ``decrypt_failed``."""
    spec = SUITES[suite]
    if key.crv != spec.crv:
        raise RemoteProtocolError(ErrorCode.DECRYPT_FAILED, f"{suite} does not match the key")
    try:
        return spec.suite.decrypt(sealed, key.private_key(), info=info)
    except Exception:  # InvalidTag, or a ValueError for a short or malformed enc
        raise RemoteProtocolError(ErrorCode.DECRYPT_FAILED, "payload does not decrypt") from None
