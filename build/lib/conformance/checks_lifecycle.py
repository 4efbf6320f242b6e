"""Key rotation, both ways, and disconnecting (docs/protocol.md sections 4.9, 12.5, 13.8,
13.9)."""

from __future__ import annotations

from conformance import messages as m
from conformance.listener import Arrival
from conformance.peer import new_id
from conformance.session import Session
from protocol.keys import SigningKey


async def run(s: Session) -> None:
    idle = None if s.active else "no active connection"
    retired: list[SigningKey] = []
    old_doc: list[bytes] = []

    async def rotate() -> None:
        key, doc = s.peer.rotate(s.now())
        retired.append(key)
        old_doc.append(doc)
        await s.deliver({"discovery": s.peer.discovery.decode("utf-8")}, m.ROTATION, key=key)
        # The new key is the one now: an envelope it signs is taken.
        await s.deliver({"connection_id": s.connection_id}, m.CONFIRM, disposition="duplicate")

    rotated = await s.check("key rotation: announced with the old key, the new key then used", "4.9, 13.8",
                            rotate, needs=idle)
    gone = idle or (None if rotated else "the rotation did not go through")
    await s.check("key rotation: the retired key is refused", "4.9, 8.5 step 6a",
                  lambda: s.refused(s.envelope({"connection_id": s.connection_id}, m.CONFIRM, key=retired[0]),
                                    "unknown_key", signed=False), needs=gone)
    await s.check("key rotation: an older document does not roll keys back", "4.9 step 2",
                  lambda: s.deliver({"discovery": old_doc[0].decode("utf-8")}, m.ROTATION,
                                    disposition="duplicate"), needs=gone)

    async def target_rotates() -> None:
        def is_rotation(a: Arrival) -> bool:
            return a.type.value == "key-rotation"

        await s.ask("rotate-keys", "rotate its signing key", is_rotation, {"node_id": s.peer.node_id})
        # Its receipts are signed with its new key now; we verify them with the keys it sent.
        await s.deliver({"connection_id": s.connection_id}, m.CONFIRM, disposition="duplicate")

    await s.check("key rotation by the target: announced, and its new receipts verify", "4.9, 9.4",
                  target_rotates, needs=idle)

    async def disconnect() -> None:
        await s.deliver({"connection_id": s.connection_id, "reason": "conformance run over"}, m.DISCONNECT)
        s.active = False
        await s.deliver({"connection_id": s.connection_id}, m.DISCONNECT, disposition="duplicate")

    ended = await s.check("disconnect, and its repeat is a duplicate", "12.5, 13.9", disconnect, needs=idle)
    await s.check("referral offer after disconnect is refused as not connected", "14.3 row 1",
                  lambda: s.refused(s.envelope(m.offer(s.connection_id or "", new_id("rfl"), s.now()), m.OFFER),
                                    "not_connected", signed=True),
                  needs=None if ended else "the disconnect did not go through")  # whatever the direction: row 1 first
