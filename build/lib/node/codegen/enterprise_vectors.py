"""Test vectors of the ``enterprise-partner`` message (docs/protocol.md, Appendix D):
payloads a receiver accepts, and payloads it refuses as ``malformed`` (a password, or
any member the message does not define, among them)."""

from __future__ import annotations

from typing import Any

from protocol.wire import ErrorCode, versioned

VALID: dict[str, Any] = {
    "connection_id": "con_01jdb8w8s1q6r0m4y1y3e2s0qk",
    "partner_ref": "usr_01jdc2n7a8kq0s5v3m1x9e4r2t",
    "name": "Priya Accountant",
    "email": "priya@ledger.example",
    "phone": "+61 400 123 456",
    "added_by": {"name": "Dana Admin", "email": "dana@summit.example"},
    "sent_at": "2027-03-01T09:30:00Z",
}


def enterprise_partner_file() -> dict[str, Any]:
    malformed = ErrorCode.MALFORMED.value

    def refused(why: str, **change: Any) -> dict[str, Any]:
        payload = {k: v for k, v in {**VALID, **change}.items() if v is not None}
        return {"why": why, "payload": payload, "error": malformed}

    return {
        "description": (
            f"Payloads of {versioned('enterprise-partner')}: a parent organisation adds a partner to a child "
            "organisation with the partner's profile only. 'accept' must validate; each 'reject' must be "
            "refused with the given error code."),
        "accept": [
            {"why": "a partner's profile", "payload": VALID},
            {"why": "a phone number of digits only", "payload": {**VALID, "phone": "0400123456"}},
        ],
        "reject": [
            refused("a password never travels: an unknown member", password="correct horse battery staple"),  # noqa: S106 (the point)
            refused("a password hash is refused too",
                    password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"),  # noqa: S106 (the point)
            refused("the e-mail address is required", email=None),
            refused("not an e-mail address", email="priya at ledger"),
            refused("the phone number is required", phone=None),
            refused("a phone number of letters", phone="call me"),
            refused("an empty name", name=""),
            refused("a timestamp that is not UTC", sent_at="2027-03-01T09:30:00+10:00"),
        ],
    }
