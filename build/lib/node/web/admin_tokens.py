"""Admin: API tokens, for scripts and other systems (``node.crm.api_tokens``).

A new token is shown once, in the answer to the form that created it (only its hash
is stored, so it cannot be shown again); revoking one stops it at once. ``admin_only``,
as the API's token routes are.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.crm import api_tokens
from node.crm import store as crm_store
from node.crm.errors import CrmError
from node.web.views import Pages, View

pages = Pages()
MAX_LABEL = 200


async def _tokens(view: View, form: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                  status: int = 200) -> web.Response:
    def read(conn: Any) -> tuple[Any, Any]:
        return api_tokens.list_tokens(conn), crm_store.list_users(conn, active_only=True)

    tokens, people = await view.node.db.read(read)
    return view.render("admin_tokens.html", {
        "tokens": tokens, "people": [(u.id, f"{u.name} ({u.email})") for u in people],
        "form": form or {"label": "", "user_id": view.user.id}, "errors": errors or {}}, status=status)


@pages.get("/admin/tokens", admin_only=True)
async def tokens(view: View) -> web.StreamResponse:
    return await _tokens(view)


@pages.post("/admin/tokens", admin_only=True)
async def create_token(view: View) -> web.StreamResponse:
    form = {"label": view.value("label"), "user_id": view.value("user_id")}
    errors: dict[str, str] = {}
    if not form["label"]:
        errors["label"] = "Enter a label, so that you know later what the token is for."
    elif len(form["label"]) > MAX_LABEL:
        errors["label"] = f"The label can be at most {MAX_LABEL} characters."
    if not form["user_id"]:
        errors["user_id"] = "Choose whose token it is."
    if not errors:
        try:
            token = await view.node.transact(
                lambda conn, ctx: api_tokens.issue_token(conn, form["user_id"], form["label"], ctx.now))
        except CrmError as exc:
            errors["user_id"] = ("Choose one of the users in the list." if exc.code == "not_found"
                                 else exc.message[:1].upper() + exc.message[1:] + ".")
    if errors:
        return await _tokens(view, form, errors, status=400)
    user = await view.node.db.read(lambda conn: crm_store.get_user(conn, form["user_id"]))
    # Shown in the answer to the POST, once.
    return view.render("admin_token_created.html", {"token": token, "label": form["label"], "user": user})


@pages.post("/admin/tokens/{id}/revoke", admin_only=True)
async def revoke(view: View) -> web.StreamResponse:
    token_id = view.request.match_info["id"]
    label = await view.node.transact(lambda conn, ctx: api_tokens.revoke_token(conn, token_id, ctx.now))
    return view.redirect("/admin/tokens", f"The token “{label}” is revoked: it no longer works.")
