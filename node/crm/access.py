"""Who is asking, and what they may do: the one check that the admin API and the web
pages share (``node.http.api`` for bearer tokens, ``node.web`` for sessions).

Roles are ``admin`` (everything), ``broker`` (the CRM and referrals, not the node's
users, tokens, keys, outbox or settings) and ``partner`` (the partner portal under
``/partner/`` only, issue 13). The console and the API do not exist for a partner, and
the portal does not exist for anyone else: either answers ``not_found`` (404), as for a
page that is not there, so that nothing tells a partner what lies behind it. In the
portal a partner sees only the deals shared with them or created by them
(:func:`partner_deal`), and within those only what :mod:`node.crm.partners` lets them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

from node.crm.errors import CrmError
from protocol.messages import Person

#: Where a page or route lives: the console (and API), or the partner portal.
Portal = Literal["console", "partner"]


@dataclass(frozen=True)
class Caller:
    """A signed-in, active user."""

    id: str
    email: str
    name: str
    role: str

    @property
    def person(self) -> Person:
        return Person(name=self.name, email=self.email)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_partner(self) -> bool:
        return self.role == "partner"


class AccessDenied(Exception):
    """The caller is signed in but may not do this (HTTP 403, code ``forbidden``)."""


def hidden() -> CrmError:
    """What a caller is told about something they may not know exists: that it is not there."""
    return CrmError("not_found", "There is no page here.")


def authorize(caller: Caller, *, admin_only: bool, portal: Portal = "console") -> None:
    """Raise unless ``caller`` may use something of ``portal`` that is ``admin_only`` (or
    open to every role there): :class:`AccessDenied` for a broker on an admin page,
    ``not_found`` for a partner outside the portal or anyone else inside it."""
    if caller.is_partner != (portal == "partner"):
        raise hidden()
    if admin_only and not caller.is_admin:
        raise AccessDenied("this needs an admin")


def partner_deal(conn: sqlite3.Connection, caller: Caller, deal_id: str) -> str:
    """``deal_id`` if the partner ``caller`` may see that deal (they created it, or a
    broker shared it with them), else ``not_found`` (the same answer as for no deal)."""
    row = conn.execute("""SELECT 1 FROM deal_partners WHERE deal_id = ? AND partner_id = ?""",
                       (deal_id, caller.id)).fetchone()
    if not caller.is_partner or row is None:
        raise CrmError("not_found", "There is no such deal in your portal: the link may be wrong, or the "
                                    "deal is not shared with you.")
    return deal_id
