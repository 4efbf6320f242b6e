"""Every mail the node sends, which of them a user may turn off in their settings, and
which carry a secret (a one-time link, a referral key): those are kept in the queue only
until they are sent (``node.mail.queue``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str
    #: What the user sees in their settings (None: they cannot turn it off).
    choice: str | None
    #: It carries a secret: its text is wiped from the queue once sent (or given up).
    secret: bool = False


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("invitation", None, secret=True),
    Kind("connection_request", "An organisation asks me to connect"),
    Kind("new_referral", "A referral I own arrives"),
    Kind("status_update", "A referral I made changes status"),
    Kind("delivery_failing", "A delivery has been failing for over an hour (admins)"),
    Kind("password_set", None, secret=True),
    Kind("password_reset", None, secret=True),
    Kind("test", None),
    # To partners (issue 13): they choose among these in the portal, not here.
    Kind("partner_added", None, secret=True),
    Kind("partner_email_confirm", None, secret=True),
    Kind("partner_deal_shared", None),
    Kind("partner_note", None),
    Kind("partner_stage", None),
    Kind("partner_outcome", None),
    # to a client of the portal (node.portal.notify): never a user, so never turned off here
    Kind("client_invitation", None, secret=True),
    Kind("client_passcode", None, secret=True),
    Kind("client_document_requested", None),
    Kind("client_stage_change", None),
    Kind("client_message", None),
    Kind("client_sms_unsent", None),
)}

#: The mails a user may turn off, in the order their settings list them.
CHOICES: tuple[Kind, ...] = tuple(k for k in KINDS.values() if k.choice is not None)

#: The kinds that carry a secret.
SECRET_KINDS: tuple[str, ...] = tuple(k.name for k in KINDS.values() if k.secret)
