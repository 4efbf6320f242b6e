"""A real node refuses an envelope whose outer header has a null member (spec 3.2), where
it used to read ``"rn_reply_to": null`` as absent (issue 15, gap 4). The same header
without the null is taken, so the null alone decides."""

from __future__ import annotations

import json

from test_inbox_refusals import counts, envelope, keys_of, offer, post
from test_two_nodes import connect_by_invitation

from protocol import jws
from protocol.encoding import b64u_decode, loads_object


def _resigned(raw: bytes, signer, **changes) -> bytes:  # type: ignore[no-untyped-def]
    """The envelope with its outer header changed and signed again by ``signer``."""
    outer = loads_object(raw)
    header = loads_object(b64u_decode(outer["protected"])) | changes
    del header["alg"], header["kid"]
    return jws.sign_flattened(header, b64u_decode(outer["payload"]), signer)


async def test_a_null_rn_reply_to_is_malformed(node_factory):
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    cid, _ = await connect_by_invitation(agency, broker)
    keys = keys_of(broker)
    signer = agency.node.keys.signing
    before = await counts(broker)
    raw = envelope(agency, broker.node.me, keys, offer(cid, "rfl_null"), envelope_id="env_null1")
    status, body = await post(broker, _resigned(raw, signer, rn_reply_to=None))
    error = json.loads(body)["error"]
    assert (status, error["code"]) == (400, "malformed")
    assert "rn_reply_to" in error["message"] and "null" in error["message"]
    assert await counts(broker) == before
    status, _ = await post(broker, _resigned(raw, signer))  # the same, without the null
    assert status == 200
