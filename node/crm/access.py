"""Who is asking, and what they may do: the one check that the admin API and the web
pages share (``node.http.api`` for bearer tokens, ``node.web`` for sessions).

Roles are ``admin`` (everything) and ``broker`` (the CRM and referrals, not the node's
users, tokens, keys, outbox or settings).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.messages import Person


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


class AccessDenied(Exception):
    """The caller is signed in but may not do this (HTTP 403, code ``forbidden``)."""


def authorize(caller: Caller, *, admin_only: bool) -> None:
    """Raise :class:`AccessDenied` unless ``caller`` may use something that is
    ``admin_only`` (or open to every role)."""
    if admin_only and not caller.is_admin:
        raise AccessDenied("this needs an admin")
