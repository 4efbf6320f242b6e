"""The discovery document: a node's name, endpoints, versions, suites and public keys,
signed by its identity key. Whoever holds a node id can check a discovery document
offline: the identity key's thumbprint must be the node id, and it must sign the document.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from protocol import jws
from protocol.encoding import dumps_canonical, loads_object
from protocol.errors import RemoteProtocolError
from protocol.keys import DecryptionKey, EncryptionPublicKey, SigningKey, VerifyKey
from protocol.messages import Discovery, Endpoints, KeyEntry, PublicJwk
from protocol.models import format_ts, validate
from protocol.suites import MANDATORY_SUITE, SUITES, SuiteId
from protocol.versions import is_newer_minor, parse_versioned
from protocol.wire import (
    MAX_ENVELOPE_BYTES,
    SUPPORTED_MAJORS,
    TYP_DISCOVERY,
    DocumentType,
    ErrorCode,
    versioned,
)


@dataclass(frozen=True)
class PeerKeys:
    """What we know of a peer from its verified discovery document."""

    node_id: str
    name: str
    inbox_url: str
    #: Active signing keys other than the identity key: these sign envelopes and receipts.
    signing: Mapping[str, VerifyKey]
    #: Every signing key ever seen, retired ones included: for verifying old receipts.
    all_signing: Mapping[str, VerifyKey]
    encryption: tuple[tuple[SuiteId, EncryptionPublicKey], ...]
    suites: tuple[SuiteId, ...]
    max_envelope_bytes: int = MAX_ENVELOPE_BYTES
    identity: VerifyKey | None = field(default=None)

    def signing_key(self, kid: str) -> VerifyKey:
        key = self.signing.get(kid)
        if key is None:
            raise RemoteProtocolError(ErrorCode.UNKNOWN_KEY, f"{kid!r} is not an active signing key of {self.node_id}")
        return key

    def with_history(self, older: Iterable[VerifyKey]) -> PeerKeys:
        """This key set, also knowing ``older`` keys for verifying old signatures."""
        return replace(self, all_signing={k.kid: k for k in older} | dict(self.all_signing))


def build_discovery(
    *,
    name: str,
    inbox_url: str,
    identity: VerifyKey,
    signing: Iterable[tuple[VerifyKey, str]],
    encryption: Iterable[tuple[SuiteId, DecryptionKey | EncryptionPublicKey, str]],
    now: datetime,
    max_envelope_bytes: int = MAX_ENVELOPE_BYTES,
) -> Discovery:
    """A discovery document. ``signing`` and ``encryption`` pair keys with a status."""
    keys = [KeyEntry(kid=identity.kid, use="sig", jwk=PublicJwk(**identity.jwk()))]
    for key, status in signing:
        keys.append(KeyEntry(kid=key.kid, use="sig", jwk=PublicJwk(**key.jwk()), status=status))
    suites: list[SuiteId] = []
    for suite, enc, status in encryption:
        pub = enc.public if isinstance(enc, DecryptionKey) else enc
        keys.append(KeyEntry(kid=pub.kid, use="enc", jwk=PublicJwk(**pub.jwk()), suite=suite, status=status))
        if status == "active" and suite not in suites:
            suites.append(suite)
    return Discovery(
        type=versioned(DocumentType.DISCOVERY),
        node_id=identity.kid,
        name=name,
        endpoints=Endpoints(inbox=inbox_url),
        versions=list(SUPPORTED_MAJORS),
        suites=suites,
        keys=keys,
        max_envelope_bytes=max_envelope_bytes,
        issued_at=format_ts(now),
    )


def sign_discovery(doc: Discovery, identity: SigningKey) -> bytes:
    if identity.kid != doc.node_id:
        raise ValueError("a discovery document is signed by the node's identity key")
    return jws.sign_flattened({"typ": TYP_DISCOVERY}, dumps_canonical(doc.wire()), identity)


def verify_discovery(raw: bytes, *, expected_node_id: str | None = None) -> tuple[Discovery, PeerKeys]:
    """Verify a signed discovery document; ``expected_node_id`` is the pinned id, if any."""
    signed, doc, identity = _parse_discovery(raw, expected_node_id)
    signed.verify(identity)
    return doc, peer_keys_of(doc, identity)


def stored_discovery(raw: bytes, *, node_id: str) -> tuple[Discovery, PeerKeys]:
    """A discovery document that :func:`verify_discovery` verified before it was stored:
    read and checked as then, its signature not checked again and its keys' objects left to
    their first use, so that a node loading its peers at start needs no cryptography."""
    _, doc, identity = _parse_discovery(raw, node_id)
    return doc, peer_keys_of(doc, identity, trusted=True)


def _parse_discovery(raw: bytes, expected_node_id: str | None) -> tuple[jws.Jws, Discovery, VerifyKey]:
    signed = jws.parse_flattened(raw, typ=TYP_DISCOVERY)
    payload = loads_object(signed.payload, what="discovery document")
    name, minor = parse_versioned(payload.get("type"), expected=DocumentType.DISCOVERY)
    doc = validate(Discovery, payload, lenient=is_newer_minor(name, minor), what="discovery")
    if expected_node_id is not None and doc.node_id != expected_node_id:
        raise RemoteProtocolError(
            ErrorCode.FINGERPRINT_MISMATCH,
            f"the node answered as {doc.node_id}, but {expected_node_id} was expected",
        )
    identity_entry = next((k for k in doc.keys if k.kid == doc.node_id and k.use == "sig"), None)
    if identity_entry is None:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "discovery lists no identity key")
    identity = VerifyKey.from_jwk(identity_entry.jwk.wire())
    if identity.kid != doc.node_id:
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "identity key does not match the node id")
    if signed.kid != doc.node_id:
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "discovery must be signed by the identity key")
    return signed, doc, identity


def peer_keys_of(doc: Discovery, identity: VerifyKey, *, trusted: bool = False) -> PeerKeys:
    """The keys of ``doc``, signed by ``identity``; ``trusted`` as in
    :meth:`EncryptionPublicKey.from_jwk`."""
    signing: dict[str, VerifyKey] = {}
    all_signing: dict[str, VerifyKey] = {identity.kid: identity}
    encryption: list[tuple[SuiteId, EncryptionPublicKey]] = []
    for entry in doc.keys:
        if entry.kid == identity.kid:
            continue
        if entry.use == "sig":
            key = VerifyKey.from_jwk(entry.jwk.wire())
            if key.kid != entry.kid:
                raise RemoteProtocolError(ErrorCode.MALFORMED, f"kid {entry.kid} is not its key's thumbprint")
            all_signing[key.kid] = key
            if entry.status == "active":
                signing[key.kid] = key
        else:
            enc = EncryptionPublicKey.from_jwk(entry.jwk.wire(), trusted=trusted)
            if enc.kid != entry.kid or entry.suite is None or SUITES[entry.suite].crv != enc.crv:
                raise RemoteProtocolError(ErrorCode.MALFORMED, f"encryption key {entry.kid} is malformed")
            if entry.status == "active":
                encryption.append((entry.suite, enc))
    if not signing:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "discovery lists no active signing key")
    if all(suite is not MANDATORY_SUITE for suite, _ in encryption):
        raise RemoteProtocolError(
            ErrorCode.UNSUPPORTED_SUITE, f"discovery offers no active key for the mandatory suite {MANDATORY_SUITE}"
        )
    offered = list(dict.fromkeys(suite for suite, _ in encryption))  # each once, first-seen order
    if list(doc.suites) != offered:
        raise RemoteProtocolError(
            ErrorCode.MALFORMED,
            "suites must list the suites of the active encryption keys, each once, in the order of the keys",
            suites=[s.value for s in doc.suites],
            expected=[s.value for s in offered],
        )
    return PeerKeys(
        node_id=doc.node_id,
        name=doc.name,
        inbox_url=doc.endpoints.inbox,
        signing=signing,
        all_signing=all_signing,
        encryption=tuple(encryption),
        suites=tuple(doc.suites),
        max_envelope_bytes=doc.max_envelope_bytes,
        identity=identity,
    )

