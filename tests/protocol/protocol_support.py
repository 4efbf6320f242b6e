"""Shared by the protocol tests: the vector nodes A, B, C with their keys, the published
vector files, and a way to build envelopes that ``seal_envelope`` would never write.

(A plain module rather than a conftest.py: ``tests/conftest.py`` is imported by name
elsewhere, and a second conftest module would shadow it.)
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from node.codegen.vector_inputs import NOW, vector_nodes
from protocol import jws
from protocol.encoding import dumps_canonical
from protocol.envelope import OpenedEnvelope, open_envelope
from protocol.models import format_ts
from protocol.suites import SuiteId, hpke_info, seal
from protocol.wire import TYP_ENVELOPE, TYP_INNER

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "docs" / "vectors"

NODES = vector_nodes()
A, B, C = NODES["A"], NODES["B"], NODES["C"]
#: Each node's keys as a peer learns them from its signed discovery document.
PEERS = {label: node.peer_keys() for label, node in NODES.items()}


def load_vector(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def craft(
    payload: dict[str, Any] | list[Any],
    *,
    rn_type: str = "referral-offer/1.0",
    envelope_id: str = "env-crafted",
    suite: SuiteId = SuiteId.X25519_CHACHA,
    outer: dict[str, Any] | None = None,
    inner: dict[str, Any] | None = None,
) -> bytes:
    """An envelope from A to B built by hand: ``payload`` is the message JSON (any object, or an array),
    ``rn_type`` any string, and ``outer``/``inner`` override protected header members."""
    routing = {
        "rn_id": envelope_id,
        "rn_type": rn_type,
        "rn_from": A.node_id,
        "rn_to": B.node_id,
        "rn_iat": format_ts(NOW),
    }
    inner_jws = jws.sign_compact(
        {"typ": TYP_INNER, **routing, **(inner or {})}, dumps_canonical(payload), A.signing
    )
    key = B.enc_key(suite).public
    sealed = seal(suite, key, inner_jws, hpke_info(A.node_id, B.node_id, envelope_id))
    header = {
        "typ": TYP_ENVELOPE,
        "rn_v": 1,
        "rn_suite": suite.value,
        "rn_enc_kid": key.kid,
        **routing,
        **(outer or {}),
    }
    return jws.sign_flattened(header, sealed, A.signing)


def open_as_b(raw: bytes, *, known: bool = True, now: datetime = NOW) -> OpenedEnvelope:
    """Open ``raw`` as node B, who knows A's keys unless ``known`` is false."""
    return open_envelope(
        raw,
        me=B.node_id,
        now=now,
        peer_keys={A.node_id: PEERS["A"]}.get if known else {}.get,
        decryption_keys=B.decryption_keys(),
    )
