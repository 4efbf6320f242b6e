"""Home: what waits for the signed-in user (``node.federation.worklist``), and for an admin
of a node not set up yet, its first steps."""

from __future__ import annotations

import sqlite3
from typing import Any

from node.crm import store as crm
from node.federation.worklist import worklist
from node.storage import store
from node.web.opportunities_pages import day
from node.web.views import Pages, View

pages = Pages()


def first_steps(conn: sqlite3.Connection) -> list[dict[str, Any]] | None:
    """The steps that set a node up, each done or not; None once it has a workflow and an
    active connection (the card then goes)."""
    has_workflow = bool(crm.list_workflows(conn))
    connected = any(c.state == "active" for c in store.list_connections(conn))
    if has_workflow and connected:
        return None
    return [
        {"href": "/deals/workflows/new", "words": "Create a workflow", "done": has_workflow,
         "why": "the stages your deals move through"},
        {"href": "/admin/users/new", "words": "Add the people who work here", "done": len(crm.list_users(conn)) > 1,
         "why": "each signs in with their own password"},
        {"href": "/connections/invite", "words": "Connect with another organisation", "done": connected,
         "why": "to send and receive referrals"},
    ]


@pages.get("/", "home.html")
async def home(view: View) -> dict[str, Any]:
    today = view.node.clock.now().astimezone(view.config.zone).date()

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        steps = first_steps(conn) if view.user.is_admin else None
        return {"work": worklist(conn, view.user, today), "steps": steps}

    return {**await view.node.db.read(read), "today": today, "day": day}
