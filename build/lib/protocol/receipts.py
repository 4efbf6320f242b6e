"""Delivery receipts: the recipient's signed statement of what it did with the exact bytes
of one envelope. The sender keeps it as proof of delivery; it verifies offline, years
later, with the recipient's signing key as pinned at the time.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import StringConstraints

from protocol import jws
from protocol.discovery import PeerKeys
from protocol.encoding import dumps_canonical, loads_object
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.keys import SigningKey
from protocol.messages import Receipt, ReceiptError
from protocol.models import format_ts, validate
from protocol.versions import is_newer_minor, parse_versioned
from protocol.wire import TYP_RECEIPT, Disposition, DocumentType, ErrorCode, versioned


def _pattern(field: str) -> re.Pattern[str]:
    """The pattern the Receipt model holds a string member to (use it with ``fullmatch``)."""
    for meta in Receipt.model_fields[field].metadata:
        if isinstance(meta, StringConstraints) and meta.pattern is not None:
            return re.compile(meta.pattern)
    raise TypeError(f"Receipt.{field} has no pattern")


#: By wire name, the patterns of the members of a receipt without an error: all the model
#: checks of them, but that ``received_at`` is a real time, which format_ts makes sure of.
_PATTERNS = {
    "from" if name == "from_" else name: _pattern(name)
    for name in ("type", "envelope_id", "envelope_sha256", "from_", "to", "received_at")
}


def make_receipt(
    *,
    envelope_id: str,
    envelope_sha256: str,
    recipient: str,
    sender: str,
    disposition: Disposition,
    now: datetime,
    signing_key: SigningKey,
    error: ProtocolError | None = None,
) -> bytes:
    """Sign a receipt. ``recipient`` is us (the signer); ``sender`` sent the envelope."""
    if (disposition is Disposition.REJECTED) != (error is not None):
        raise ValueError("a rejected receipt, and only that, carries an error")
    if error is None and type(disposition) is Disposition:
        # The receipt of every envelope accepted: the model's checks (and its wire() form),
        # at a fraction of the cost of building it. Anything else goes to the model below.
        members = {
            "type": versioned(DocumentType.RECEIPT),
            "envelope_id": envelope_id,
            "envelope_sha256": envelope_sha256,
            "from": recipient,
            "to": sender,
            "received_at": format_ts(now),
        }
        if all(type(v) is str and _PATTERNS[k].fullmatch(v) for k, v in members.items()):
            members["disposition"] = disposition.value
            return _sign(members, signing_key)
    receipt = Receipt(
        type=versioned(DocumentType.RECEIPT),
        envelope_id=envelope_id,
        envelope_sha256=envelope_sha256,
        from_=recipient,
        to=sender,
        disposition=disposition,
        error=ReceiptError(code=error.code, message=error.message) if error else None,
        received_at=format_ts(now),
    )
    return _sign(receipt.wire(), signing_key)


def _sign(members: dict[str, Any], signing_key: SigningKey) -> bytes:
    return jws.sign_flattened({"typ": TYP_RECEIPT}, dumps_canonical(members), signing_key)


def verify_receipt(
    raw: bytes,
    *,
    keys: PeerKeys,
    envelope_id: str | None = None,
    envelope_sha256: str | None = None,
    sender: str | None = None,
) -> Receipt:
    """Verify a receipt signed by ``keys.node_id`` with any signing key it ever had.

    When ``envelope_id``/``envelope_sha256``/``sender`` are given they must match: a receipt
    for other bytes is no proof of delivery for ours.
    """
    signed = jws.parse_flattened(raw, typ=TYP_RECEIPT)
    key = keys.all_signing.get(signed.kid)
    if key is None:
        raise RemoteProtocolError(ErrorCode.UNKNOWN_KEY, f"receipt signed with unknown key {signed.kid!r}")
    signed.verify(key)
    data = loads_object(signed.payload, what="receipt")
    name, minor = parse_versioned(data.get("type"), expected=DocumentType.RECEIPT)
    receipt = validate(Receipt, data, lenient=is_newer_minor(name, minor), what="receipt")
    if receipt.from_ != keys.node_id:
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "receipt is not from the key's node")
    if envelope_id is not None and receipt.envelope_id != envelope_id:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "receipt names another envelope")
    if envelope_sha256 is not None and receipt.envelope_sha256 != envelope_sha256:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "receipt names other bytes than those sent")
    if sender is not None and receipt.to != sender:
        raise RemoteProtocolError(ErrorCode.WRONG_RECIPIENT, "receipt was issued to another node")
    return receipt
