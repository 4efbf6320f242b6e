"""Every mail the node sends, and which of them a user may turn off in their settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str
    #: What the user sees in their settings (None: they cannot turn it off).
    choice: str | None


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("invitation", None),
    Kind("connection_request", "An organisation asks me to connect"),
    Kind("new_referral", "A referral I own arrives"),
    Kind("status_update", "A referral I made changes status"),
    Kind("delivery_failing", "A delivery has been failing for over an hour (admins)"),
    Kind("password_set", None),
    Kind("password_reset", None),
    Kind("test", None),
)}

#: The mails a user may turn off, in the order their settings list them.
CHOICES: tuple[Kind, ...] = tuple(k for k in KINDS.values() if k.choice is not None)
