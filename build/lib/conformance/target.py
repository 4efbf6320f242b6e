"""The node under test, seen from outside: its discovery document, and what its inbox
answers. Every judgement of an answer is here, so that each check says only what it
expects (docs/protocol.md sections 7.4, 9.4 and 15)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from conformance.forge import Sent
from protocol.discovery import PeerKeys, verify_discovery
from protocol.encoding import b64u_decode
from protocol.errors import ProtocolError
from protocol.messages import Discovery, Receipt
from protocol.receipts import verify_receipt
from protocol.wire import DISCOVERY_PATH, MEDIA_TYPE_JOSE_JSON

#: The HTTP status of each error code (section 15), as a third party reads it there.
STATUS: dict[str, int] = {
    **dict.fromkeys(("malformed", "expired", "not_yet_valid", "unsupported_version", "unsupported_type",
                     "unsupported_suite", "decrypt_failed", "wrong_recipient", "fingerprint_mismatch",
                     "consent_required", "field_not_allowed"), 400),
    **dict.fromkeys(("bad_signature", "unknown_key"), 401),
    **dict.fromkeys(("unknown_sender", "not_connected", "direction_not_allowed", "invitation_invalid",
                     "invitation_expired", "invitation_used", "invitation_revoked", "unknown_user"), 403),
    "unknown_subject": 404,
    **dict.fromkeys(("replayed", "invalid_transition", "out_of_order"), 409),
    "too_large": 413,
    "rate_limited": 429,
    "internal": 500,
}


#: For these codes ``error.detail.supported`` lists what the receiver knows (section 7.4):
#: at least this much.
SUPPORTED: dict[str, object] = {
    "unsupported_version": 1,
    "unsupported_type": "referral-offer",
    "unsupported_suite": "X25519-HKDF-SHA256-CHACHA20POLY1305",
}


class Mismatch(Exception):
    """The target answered otherwise than the spec says; the text says how."""


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def code(self) -> str | None:
        data = self.json()
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            code = data["error"].get("code")
            return code if isinstance(code, str) else None
        return None

    def describe(self) -> str:
        code = self.code()
        if code is not None:
            return f"HTTP {self.status} {code}: {self.json()['error'].get('message', '')}"
        if self.status == 200:
            try:
                payload = json.loads(b64u_decode(json.loads(self.body)["payload"]))
                return f"HTTP 200 and a receipt with disposition {payload['disposition']}"
            except (ValueError, KeyError, TypeError, ProtocolError):
                pass
        return f"HTTP {self.status} {self.content_type} {self.body[:120]!r}"


async def _pieces(body: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


class Target:
    """The node at ``base_url``, pinned to ``node_id`` once its discovery verifies."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, me: str, *, timeout_s: float) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.me = me
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.keys: PeerKeys | None = None
        self.doc: Discovery | None = None
        self.raw_discovery = b""

    async def discover(self, expected_node_id: str | None) -> tuple[int, str, bytes]:
        """GET the discovery document and verify it (section 4.8); raises on failure."""
        async with self.http.get(self.base_url + DISCOVERY_PATH, timeout=self.timeout) as r:
            body = await r.content.read(65536 + 1)
            status, ctype = r.status, r.content_type
        if status != 200:
            raise Mismatch(f"discovery answered HTTP {status}")
        if len(body) > 65536:
            raise Mismatch("discovery document is over 65536 bytes")
        try:
            self.doc, self.keys = verify_discovery(body, expected_node_id=expected_node_id)
        except ProtocolError as exc:
            raise Mismatch(f"discovery document does not verify: {exc.code.value}: {exc.message}") from None
        self.raw_discovery = body
        return status, ctype, body

    @property
    def node_id(self) -> str:
        assert self.keys is not None
        return self.keys.node_id

    async def post(self, body: bytes, *, content_type: str = MEDIA_TYPE_JOSE_JSON, chunked: bool = False) -> Answer:
        """POST ``body`` to the inbox, with its Content-Length, or ``chunked`` without one."""
        assert self.keys is not None
        data: bytes | AsyncIterator[bytes] = _pieces(body) if chunked else body
        async with self.http.post(self.keys.inbox_url, data=data, timeout=self.timeout,
                                  headers={"Content-Type": content_type}) as r:
            return Answer(r.status, r.content_type, await r.read())

    def receipt(self, answer: Answer, sent: Sent, *, disposition: str = "accepted", me: str | None = None) -> Receipt:
        """The ``200`` receipt of ``sent``, verified as section 9.4 says, with ``disposition``."""
        if answer.status != 200:
            raise Mismatch(f"expected 200 and a receipt, got {answer.describe()}")
        if answer.content_type != MEDIA_TYPE_JOSE_JSON:
            raise Mismatch(f"a receipt's Content-Type is {MEDIA_TYPE_JOSE_JSON}, not {answer.content_type}")
        receipt = self._verify(answer.body, sent, me)
        if receipt.disposition != disposition:
            raise Mismatch(f"expected disposition {disposition}, got {receipt.disposition}")
        return receipt

    def refusal(self, answer: Answer, code: str, *, sent: Sent | None, signed: bool | None,
                me: str | None = None) -> None:
        """``answer`` must refuse with ``code``, its status, an error body, and a rejected
        receipt exactly when ``signed`` (None: either; section 9.3)."""
        if answer.status != STATUS[code] or answer.code() != code:
            raise Mismatch(f"expected HTTP {STATUS[code]} {code}, got {answer.describe()}")
        if answer.content_type != "application/json":
            raise Mismatch(f"an error body's Content-Type is application/json, not {answer.content_type}")
        data = answer.json()
        if not isinstance(data["error"].get("message"), str):
            raise Mismatch("the error body has no error.message")
        receipt = data.get("receipt")
        if receipt is not None and not isinstance(receipt, str):
            raise Mismatch("receipt in an error body is a JSON string")
        wanted = SUPPORTED.get(code)
        if wanted is not None:
            supported = (data["error"].get("detail") or {}).get("supported")
            if not isinstance(supported, list) or wanted not in supported:
                raise Mismatch(f"{code} needs detail.supported, a list with {wanted!r} in it; got {supported!r}")
        if signed is False and receipt is not None:
            raise Mismatch("a receipt came with a refusal made before the sender was authenticated")
        if signed is True and receipt is None:
            raise Mismatch("no rejected receipt, though the sender was authenticated")
        if receipt is not None and sent is not None:
            verified = self._verify(receipt.encode("utf-8"), sent, me)
            if verified.disposition != "rejected" or verified.error is None or verified.error.code != code:
                raise Mismatch(f"the receipt says {verified.disposition} "
                               f"{verified.error.code if verified.error else ''}, not rejected {code}")

    def _verify(self, raw: bytes, sent: Sent, me: str | None) -> Receipt:
        assert self.keys is not None
        try:
            return verify_receipt(raw, keys=self.keys, envelope_id=sent.envelope_id,
                                  envelope_sha256=sent.sha256, sender=me or self.me)
        except ProtocolError as exc:
            raise Mismatch(f"the receipt does not verify: {exc.code.value}: {exc.message}") from None
