"""Password links: issued for a user, printed (``refnode init``, ``users add``) or mailed."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from node.base.config import Config
from node.crm import accounts
from node.crm.accounts import LinkPurpose
from node.mail import queue


def link_url(config: Config, token: str) -> str:
    return f"{config.public_url}/set-password/{token}"


def issue_link(conn: sqlite3.Connection, config: Config, user_id: str, purpose: LinkPurpose, now: datetime,
               *, mail: bool) -> str:
    """A new one-time link for the user (older ones stop working); queued as a mail to
    them when ``mail``. The link's URL, for whoever must hand it over otherwise."""
    token = accounts.new_password_link(conn, user_id, purpose, now, config.password_link_ttl_s)
    row = conn.execute("SELECT email, name, role FROM users WHERE id = ?", (user_id,)).fetchone()
    # a partner's link opens the partner portal's page (the same step, the portal's look)
    url = link_url(config, token).replace("/set-password/", "/partner/set-password/") if row["role"] == "partner" \
        else link_url(config, token)
    if mail:
        queue.enqueue(conn, config, kind=f"password_{purpose}", to_addr=row["email"], to_name=row["name"],
                      context={"link": url, "expires_at": now + timedelta(seconds=config.password_link_ttl_s)},
                      now=now)
    return url
