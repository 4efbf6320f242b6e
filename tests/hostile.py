"""A hostile sender for tests: envelopes built the way an attacker would build them.

Our own sender (``protocol.envelope.seal_envelope``) only ever writes correct envelopes,
so a check on the receiving side that it never trips goes unseen by tests that use it.
:class:`Hostile` builds each layer by hand from ``protocol/``'s parts (JWS signing, HPKE
sealing, the routing fields) with the real keys of a real node, and lets a test break
exactly one thing: a member of the outer or inner header, the key that signs either
layer, the key or ``info`` the payload is sealed with, the inner JWS text, the message
bytes, or the outer JSON itself. With no break it writes what ``seal_envelope`` writes.

:func:`refused` posts the bytes to a real node and checks the answer as the spec has it:
the status and code, a signed ``rejected`` receipt exactly when the sender was
authenticated (verified here against the envelope's id, bytes and sender), and not one
row of the receiver's database changed.

:class:`FakePeer` stands in for a peer on 127.0.0.1, on the port the peer's pinned
discovery document names, and answers each envelope with whatever receipt a test makes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from conftest import WAIT_S

from protocol.discovery import PeerKeys, verify_discovery
from protocol.encoding import b64u_decode, b64u_encode, dumps_canonical
from protocol.envelope import digest
from protocol.keys import EncryptionPublicKey, SigningKey
from protocol.models import WireModel, format_ts
from protocol.receipts import verify_receipt
from protocol.suites import SuiteId, hpke_info, seal
from protocol.wire import (
    DISCOVERY_PATH,
    INBOX_PATH,
    MEDIA_TYPE_JOSE_JSON,
    TYP_ENVELOPE,
    TYP_INNER,
    MessageType,
    versioned,
)

#: In ``outer=`` or ``inner=``: leave this member out.
DROP = object()


def fresh_key(seed: str) -> SigningKey:
    """A signing key no node has: sign with it to be someone nobody pinned."""
    return SigningKey.from_seed(hashlib.sha256(seed.encode()).digest())


def signed_flattened(header: dict[str, Any], payload: bytes, key: SigningKey) -> bytes:
    """A flattened JWS whose protected header is ``header`` exactly (``alg`` and ``kid``
    are not added), signed by ``key``."""
    protected = b64u_encode(dumps_canonical(header))
    body = b64u_encode(payload)
    signature = b64u_encode(key.sign(f"{protected}.{body}".encode("ascii")))
    return dumps_canonical({"payload": body, "protected": protected, "signature": signature})


def signed_compact(header: dict[str, Any], payload: bytes, key: SigningKey) -> bytes:
    protected = b64u_encode(dumps_canonical(header))
    signing_input = f"{protected}.{b64u_encode(payload)}".encode("ascii")
    return signing_input + b"." + b64u_encode(key.sign(signing_input)).encode("ascii")


def _merge(base: dict[str, Any], changes: dict[str, Any] | None) -> dict[str, Any]:
    merged = dict(base)
    for name, value in (changes or {}).items():
        if value is DROP:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def keys_of(node: Any) -> PeerKeys:
    """A running node's keys as a peer learns them (from its signed discovery document)."""
    return verify_discovery(node.node.discovery, expected_node_id=node.node.me)[1]


class Hostile:
    """Envelopes from ``sender`` (a running node, whose real keys sign) to ``target``."""

    def __init__(self, sender: Any, target: Any) -> None:
        self.sender = sender
        self.me: str = sender.node.me
        self.signing: SigningKey = sender.node.keys.signing
        self.identity: SigningKey = sender.node.keys.identity
        self.target = target
        self.target_keys = keys_of(target)
        self._count = 0

    def encryption_key(self, suite: SuiteId = SuiteId.X25519_CHACHA) -> EncryptionPublicKey:
        return next(k for s, k in self.target_keys.encryption if s == suite)

    def envelope(
        self,
        message: WireModel | dict[str, Any],
        message_type: MessageType | str = MessageType.REFERRAL_OFFER,
        *,
        envelope_id: str | None = None,
        now: datetime | None = None,
        age_s: float = 0,
        outer: dict[str, Any] | None = None,
        inner: dict[str, Any] | None = None,
        outer_key: SigningKey | None = None,
        inner_key: SigningKey | None = None,
        suite: SuiteId = SuiteId.X25519_CHACHA,
        seal_to: EncryptionPublicKey | None = None,
        info: bytes | None = None,
        payload: bytes | None = None,
        plaintext: bytes | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> bytes:
        """The envelope's bytes. Every argument but ``message`` breaks one thing:

        ``outer``/``inner`` change (or, with :data:`DROP`, remove) protected header
        members; ``outer_key``/``inner_key`` sign a layer with another key (the header's
        ``kid`` is the real key's unless the header change says otherwise); ``seal_to``
        and ``info`` seal the payload to another key or with another HPKE ``info``;
        ``payload`` replaces the message JSON bytes, ``plaintext`` the whole inner JWS;
        ``edit`` changes the outer JSON object (``payload``, ``protected``,
        ``signature``) after signing."""
        self._count += 1
        envelope_id = envelope_id or f"env_hostile{self._count:04d}"
        when = (now or self.sender.node.clock.now()) - timedelta(seconds=age_s)
        type_name = versioned(message_type) if isinstance(message_type, MessageType) else message_type
        routing = {"rn_id": envelope_id, "rn_type": type_name, "rn_from": self.me,
                   "rn_to": self.target.node.me, "rn_iat": format_ts(when)}
        if payload is None:
            body = message.wire() if isinstance(message, WireModel) else message
            payload = dumps_canonical(body)
        if plaintext is None:
            inner_header = _merge({"typ": TYP_INNER, "alg": "Ed25519", "kid": self.signing.kid, **routing}, inner)
            plaintext = signed_compact(inner_header, payload, inner_key or self.signing)
        key = seal_to or self.encryption_key(suite)
        sealed = seal(suite, key, plaintext, info or hpke_info(self.me, self.target.node.me, envelope_id))
        outer_header = _merge({"typ": TYP_ENVELOPE, "alg": "Ed25519", "kid": self.signing.kid, "rn_v": 1,
                               "rn_suite": suite.value, "rn_enc_kid": key.kid, **routing}, outer)
        raw = signed_flattened(outer_header, sealed, outer_key or self.signing)
        if edit is not None:
            data = json.loads(raw)
            edit(data)
            raw = json.dumps(data).encode()
        return raw


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = ""

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        try:
            return self.json["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return None


async def post(target: Any, body: bytes, content_type: str = MEDIA_TYPE_JOSE_JSON) -> Answer:
    async with aiohttp.ClientSession() as session:
        async with session.post(target.url + INBOX_PATH, data=body, headers={"Content-Type": content_type}) as r:
            return Answer(r.status, await r.read(), r.headers.get("Content-Type", ""))


async def snapshot(target: Any) -> dict[str, Any]:
    """Every row of every table of the target's database (tests/node/test_bad_input_core.py)."""
    from test_bad_input_core import snapshot as every_row

    return await every_row(target)


async def settle(target: Any, within_s: float | None = None) -> None:
    """Wait until nothing is pending in the target's outbox (a handshake's next step, say),
    so that its delivery does not change rows while a refusal is being checked."""
    from node.storage import store

    loop = asyncio.get_running_loop()
    deadline = loop.time() + (min(WAIT_S, 10.0) if within_s is None else within_s)
    while await target.node.db.read(lambda conn: store.list_outbox(conn, state="pending", limit=1)):
        if loop.time() > deadline:
            return
        await asyncio.sleep(0.05)


async def refused(target: Any, body: bytes, *, status: int, code: str, receipt: bool,
                  sender: str | None = None, content_type: str = MEDIA_TYPE_JOSE_JSON) -> Answer:
    """Post ``body``: it is refused with ``status`` and ``code``, with a signed rejected
    receipt for these exact bytes if ``receipt`` (and none otherwise), and nothing is stored."""
    await settle(target)
    before = await snapshot(target)
    answer = await post(target, body, content_type)
    assert (answer.status, answer.code) == (status, code), (answer.status, answer.body[:400])
    if receipt:
        envelope = json.loads(body)
        header = json.loads(b64u_decode(envelope["protected"]))
        signed = verify_receipt(answer.json["receipt"].encode(), keys=keys_of(target),
                                envelope_id=header["rn_id"], envelope_sha256=digest(body),
                                sender=sender or header["rn_from"])
        assert signed.disposition.value == "rejected" and signed.error is not None
        assert signed.error.code == code
    else:
        assert "receipt" not in answer.json, answer.json
    after = await snapshot(target)
    changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
    assert not changed, f"a refused envelope changed the receiver's database: {changed}"
    return answer


class FakePeer:
    """An aiohttp server on 127.0.0.1 that answers a pinned peer's inbox in its place (and
    with ``discovery``, its discovery document).

    ``answer(body)`` gets each envelope's bytes and returns the (status, body) to send, or
    (status, body, headers); every envelope received is kept in ``received``."""

    def __init__(self, port: int, answer: Callable[[bytes], tuple[Any, ...]], *, discovery: bytes | None = None) -> None:
        self.port = port
        self.answer = answer
        self.discovery = discovery
        self.received: list[bytes] = []
        self._runner: web.AppRunner | None = None

    async def _inbox(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(body)
        status, reply, *headers = self.answer(body)
        kind = MEDIA_TYPE_JOSE_JSON if status == 200 else "application/json"
        return web.Response(status=status, body=reply, content_type=kind, headers=headers[0] if headers else None)

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.Response(body=self.discovery, content_type=MEDIA_TYPE_JOSE_JSON)

    async def __aenter__(self) -> FakePeer:
        app = web.Application()
        app.router.add_post(INBOX_PATH, self._inbox)
        if self.discovery is not None:  # the peer's own document, served in its place too
            app.router.add_get(DISCOVERY_PATH, self._discovery)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
