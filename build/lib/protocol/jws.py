"""JSON Web Signature with EdDSA (RFC 7515, RFC 8037): the one way we sign bytes.

We sign exactly the bytes that travel: ``ASCII(BASE64URL(protected) || '.' ||
BASE64URL(payload))``. A verifier checks the received text as it is and never
re-serializes JSON first, so any off-the-shelf JWS library can verify what we sign.

Two serializations are used: the flattened JSON one (section 7.2.2) for envelopes,
receipts and discovery documents, and the compact one (section 7.1) for the signed
message inside an envelope's encrypted payload.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import StringConstraints

from protocol.encoding import b64u_decode, b64u_encode, dumps_canonical, loads_object
from protocol.errors import RemoteProtocolError
from protocol.keys import SigningKey, VerifyKey
from protocol.models import WireModel, validate
from protocol.wire import ErrorCode

#: RFC 9864 fully-specified algorithm name (it replaces the deprecated "EdDSA" of RFC 8037).
ALG = "Ed25519"


B64url = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]*$")]


class FlattenedJws(WireModel):
    """The flattened JSON serialization as we use it: exactly these three members (no
    unprotected ``header``), each unpadded base64url."""

    protected: B64url
    payload: B64url
    signature: B64url


@dataclass(frozen=True)
class Jws:
    """A parsed, not yet verified JWS."""

    header: dict[str, Any]
    payload: bytes
    signature: bytes
    signing_input: bytes

    @property
    def kid(self) -> str:
        return str(self.header["kid"])

    def verify(self, key: VerifyKey) -> None:
        """Raise ``bad_signature`` unless signed by ``key`` (whose kid must match)."""
        if key.kid != self.kid:
            raise RemoteProtocolError(ErrorCode.UNKNOWN_KEY, f"signed with key {self.kid!r}, not {key.kid!r}")
        key.verify(self.signature, self.signing_input)


def _header_b64(header: dict[str, Any], key: SigningKey) -> str:
    if header.keys() == {"typ"} and type(header["typ"]) is str:
        return _typ_header_b64(header["typ"], key.kid)
    full = dict(header, alg=ALG, kid=key.kid)
    return b64u_encode(dumps_canonical(full))


@functools.lru_cache(maxsize=64)
def _typ_header_b64(typ: str, kid: str) -> str:
    """A header of ``typ`` alone (receipts, discovery documents): one per key and typ."""
    return b64u_encode(dumps_canonical({"typ": typ, "alg": ALG, "kid": kid}))


def sign_flattened(header: dict[str, Any], payload: bytes, key: SigningKey) -> bytes:
    """Sign and serialize as flattened JSON; ``alg`` and ``kid`` are added to ``header``."""
    protected = _header_b64(header, key)
    body = b64u_encode(payload)
    signature = b64u_encode(key.sign(f"{protected}.{body}".encode("ascii")))
    # dumps_canonical({"payload": body, "protected": protected, "signature": signature}),
    # written out: the names are in sorted order and base64url needs no escaping.
    text = f'{{"payload":"{body}","protected":"{protected}","signature":"{signature}"}}'
    return text.encode("ascii")


def sign_compact(header: dict[str, Any], payload: bytes, key: SigningKey) -> bytes:
    protected = _header_b64(header, key)
    body = b64u_encode(payload)
    signing_input = f"{protected}.{body}".encode("ascii")
    return signing_input + b"." + b64u_encode(key.sign(signing_input)).encode("ascii")


def _parse(protected: str, payload: str, signature: str, *, typ: str) -> Jws:
    header = loads_object(b64u_decode(protected, what="protected header"), what="protected header")
    if header.get("alg") != ALG:
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"alg must be {ALG!r}")
    if not isinstance(header.get("kid"), str):
        raise RemoteProtocolError(ErrorCode.MALFORMED, "protected header needs a string kid")
    if header.get("typ") != typ:
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"typ must be {typ!r}")
    if "crit" in header:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "no crit header parameters are understood")
    sig = b64u_decode(signature, what="signature")
    if len(sig) != 64:
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "an Ed25519 signature is 64 bytes")
    return Jws(
        header=header,
        payload=b64u_decode(payload, what="payload"),
        signature=sig,
        signing_input=f"{protected}.{payload}".encode("ascii"),
    )


_FLATTENED_MEMBERS = frozenset(FlattenedJws.model_fields)


def parse_flattened(data: bytes, *, typ: str) -> Jws:
    """Parse a flattened JSON JWS whose protected header has ``typ``. Does not verify."""
    obj = loads_object(data, what="JWS")
    # Three strings that all decode as base64url (in _parse) match FlattenedJws's patterns,
    # so the model, whose pattern checks cost more than the decoding, is only needed to
    # word a refusal. Its refusal comes first, as when it checked every JWS.
    if obj.keys() == _FLATTENED_MEMBERS:
        protected, payload, signature = obj["protected"], obj["payload"], obj["signature"]
        if type(protected) is str and type(payload) is str and type(signature) is str:
            try:
                return _parse(protected, payload, signature, typ=typ)
            except RemoteProtocolError:
                validate(FlattenedJws, obj, what="JWS")
                raise
    checked = validate(FlattenedJws, obj, what="JWS")
    return _parse(checked.protected, checked.payload, checked.signature, typ=typ)


def parse_compact(data: bytes, *, typ: str) -> Jws:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "compact JWS must be ASCII") from None
    parts = text.split(".")
    if len(parts) != 3:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "compact JWS has three parts")
    return _parse(parts[0], parts[1], parts[2], typ=typ)
