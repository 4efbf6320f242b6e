"""Home: what waits for the signed-in user (``node.federation.worklist``)."""

from __future__ import annotations

from typing import Any

from node.federation.worklist import worklist
from node.web.views import Pages, View

pages = Pages()


@pages.get("/", "home.html")
async def home(view: View) -> dict[str, Any]:
    today = view.node.clock.now().astimezone(view.config.zone).date()
    work = await view.node.db.read(lambda conn: worklist(conn, view.user, today))
    return {"work": work, "today": today}
