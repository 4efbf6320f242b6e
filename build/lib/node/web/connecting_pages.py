"""The three ways to connect with another organisation, for admins (as the admin API's
routes are admin-only):

- **Invite an organisation** (Salestrekker's inbound set-up): a name, where their
  referrals land, and an expiry. The next page shows the referral URL and key once, with
  copy buttons and *Send by e-mail*: the key is stored only as a hash, so the mail can only
  be sent from that page, whose form carries the URL and key back (checked against the
  stored hash before the mail is queued: ``node.federation.connection_mail``);
- **Connect with a URL and key**: the other node's name and fingerprint are shown to
  compare before the admin confirms (the confirm form carries the URL and key back);
- **Request to connect** (Blitz): by the e-mail of an active user at the other node; its
  name and fingerprint are shown first as well, and the request is pinned to the node
  whose fingerprint the admin saw.

Every form works without JavaScript: each step is a form that posts to the next.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from node.crm.errors import CrmError
from node.crm.fields import Email, Name
from node.federation import handshake
from node.federation.connection_mail import invitation_for, send_invitation
from node.http.connections_api import (
    ConnectIn,
    InvitationIn,
    discover,
    make_invitation,
    start_connecting,
)
from node.storage import store
from node.web.connection_forms import (
    DIRECTIONS,
    RULES,
    blank_values,
    choices,
    form_errors,
    inbound_form,
    inbound_problems,
    values_from,
)
from node.web.views import Pages, View
from protocol.errors import ProtocolError
from protocol.keys import fingerprint_of
from protocol.wire import ErrorCode

pages = Pages()

#: What an invitation may last, in days; the node's own expiry (``invitation_ttl_s``) is
#: offered first, as the default.
EXPIRIES = (1, 3, 7, 14, 30, 90)


class MailTo(BaseModel):
    """Who an invitation is mailed to."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Name
    email: Email


def _expiries(view: View) -> list[tuple[str, str]]:
    default = min(90, max(1, view.config.invitation_ttl_s // 86400))
    return [(str(d), f"{d} day{'s' if d != 1 else ''}") for d in [default, *sorted(set(EXPIRIES) - {default})]]


# --- invite an organisation ------------------------------------------------------------


async def _invite_form(view: View, values: dict[str, Any], errors: dict[str, str], status: int = 200) -> web.Response:
    context = await view.node.db.read(choices)
    return view.render("connections_invite.html", {**context, "values": values, "errors": errors,
                                                   "directions": DIRECTIONS, "rules": RULES,
                                                   "expiries": _expiries(view)}, status=status)


@pages.get("/connections/invite", admin_only=True)
async def invite_form(view: View) -> web.StreamResponse:
    return await _invite_form(view, blank_values(direction="receive", rule="match_owner"), {})


@pages.post("/connections/invite", admin_only=True)
async def invite(view: View) -> web.StreamResponse:
    values = values_from(view)
    if not values["name"]:
        return await _invite_form(view, values, {"name": "Enter the name of the organisation you invite."}, 400)
    if problems := inbound_problems(view):
        return await _invite_form(view, values, problems, 400)
    days = values["ttl_days"] or _expiries(view)[0][0]
    if not days.isdigit() or int(days) not in {int(d) for d, _ in _expiries(view)}:
        return await _invite_form(view, values, {"ttl_days": "Choose how long the invitation lasts."}, 400)
    try:
        body = InvitationIn.model_validate({"name": values["name"], "direction": values["direction"] or "receive",
                                            "ttl_s": int(days) * 86400, "inbound": inbound_form(view)})
        record, url, key = await make_invitation(view.node, view.user, body)
    except (ValidationError, CrmError) as exc:
        return await _invite_form(view, values, form_errors(exc, "workflow_id"), 400)
    return _invited(view, record, url, key, blank_values(), {})


def _invited(view: View, record: Any, url: str, key: str, values: dict[str, Any], errors: dict[str, str],
             status: int = 200) -> web.Response:
    """The page that shows an invitation's URL and key: the only one that ever does."""
    return view.render("connections_invited.html", {
        "invitation": record, "url": url, "key": key, "fingerprint": fingerprint_of(view.node.me),
        "values": values, "errors": errors}, status=status)


@pages.post("/connections/invitations/{id}/send", admin_only=True)
async def send_by_mail(view: View) -> web.StreamResponse:
    invitation_id = view.request.match_info["id"]
    url, key = view.value("referral_url"), view.value("referral_key")
    to_name, to_email = view.value("name"), view.value("email")
    errors: dict[str, str] = {}
    if not to_name:
        errors["name"] = "Enter the name of the admin you send it to."
    if not to_email:
        errors["email"] = "Enter their e-mail address."
    if not errors:
        try:
            MailTo(name=to_name, email=to_email)
        except ValidationError as exc:
            errors = form_errors(exc, "email")
    if errors:  # shown again, with the URL and key: only if they are this invitation's
        me, now = view.node.me, view.node.clock.now()
        record = await view.node.db.read(lambda conn: invitation_for(
            conn, me=me, now=now, invitation_id=invitation_id, referral_url=url, referral_key=key))
        return _invited(view, record, url, key, values_from(view), errors, 400)
    record = await view.node.transact(lambda conn, ctx: send_invitation(
        conn, ctx, invitation_id=invitation_id, referral_url=url, referral_key=key, to_name=to_name,
        to_email=to_email, sent_by=view.user.person))
    return view.redirect("/connections", f"The invitation for {record.name} is on its way to {to_name} "
                                         f"<{to_email}>.")


@pages.post("/connections/invitations/{id}/revoke", admin_only=True)
async def revoke(view: View) -> web.StreamResponse:
    invitation_id = view.request.match_info["id"]
    record = await view.node.transact(lambda conn, ctx: handshake.revoke_invitation(conn, ctx, invitation_id))
    return view.redirect("/connections", f"The invitation for {record.name} is revoked: its key no longer works.")


# --- connect with a URL and key, or ask a user there -------------------------------------

#: The two ways of asking: with a referral URL and key, or by a user's e-mail address.
KEY, REQUEST = "key", "request"


def _discovery_errors(exc: ProtocolError, how: str) -> dict[str, str]:
    """A failed look at the other node, as an error on the field that caused it."""
    if exc.code is ErrorCode.INVITATION_INVALID:
        field = "referral_key" if "key" in exc.message.split(";")[0] else "referral_url"
        return {field: exc.message[0].upper() + exc.message[1:] + "."}
    field = "referral_url" if how == KEY else "url"
    if exc.code is ErrorCode.UNKNOWN_SENDER:
        return {field: f"We could not reach their node: {exc.message}."}
    if exc.code is ErrorCode.FINGERPRINT_MISMATCH:
        if how == KEY:
            return {field: "The node at this address is not the one this referral URL names: check the URL with "
                           "the admin who sent it."}
        return {field: "The node at this address is no longer the one whose fingerprint you were shown. "
                       "Check the address and start again."}
    return {field: f"Their node's answer is not usable ({exc.code.value}): {exc.message}."}


def _ask_form(view: View, how: str, values: dict[str, Any], errors: dict[str, str],
              status: int = 200) -> web.Response:
    template = "connections_connect.html" if how == KEY else "connections_request.html"
    return view.render(template, {"values": values, "errors": errors, "directions": DIRECTIONS[::-1]},
                       status=status)


def _ask_body(view: View, how: str) -> tuple[ConnectIn | None, dict[str, str]]:
    """Step 1's form as the API's input, or the errors to show with it."""
    values = values_from(view)
    if how == KEY:
        errors = {k: m for k, m in (("referral_url", "Paste the referral URL you were given."),
                                    ("referral_key", "Paste the referral key that came with it.")) if not values[k]}
        raw = {"referral_url": values["referral_url"], "referral_key": values["referral_key"]}
    else:
        errors = {k: m for k, m in (("url", "Enter the address of their node, e.g. https://node.example.com."),
                                    ("email", "Enter the e-mail address of a user there.")) if not values[k]}
        raw = {"url": values["url"], "email": values["email"], "direction": values["direction"] or "send",
               "message": view.form.get("message", "").strip()}
    if errors:
        return None, errors
    try:
        return ConnectIn.model_validate(raw), {}
    except ValidationError as exc:
        return None, form_errors(exc, "referral_url" if how == KEY else "url")


@pages.get("/connections/connect", admin_only=True)
async def connect_form(view: View) -> web.StreamResponse:
    return _ask_form(view, KEY, blank_values(), {})


@pages.get("/connections/request", admin_only=True)
async def request_form(view: View) -> web.StreamResponse:
    return _ask_form(view, REQUEST, blank_values(direction="send"), {})


async def _check(view: View, how: str) -> web.StreamResponse:
    """Step 2: fetch the other node's discovery document, and show its name and
    fingerprint (and ours) to compare before the admin confirms."""
    body, errors = _ask_body(view, how)
    if body is None:
        return _ask_form(view, how, values_from(view), errors, 400)
    try:
        _, keys, _ = await discover(view.node, body)
    except ProtocolError as exc:
        return _ask_form(view, how, values_from(view), _discovery_errors(exc, how), 400)
    if keys.node_id == view.node.me:
        field = "referral_url" if how == KEY else "url"
        return _ask_form(view, how, values_from(view), {field: "That is this node: connect with another one."}, 400)
    existing = await view.node.db.read(lambda conn: store.active_connection_with(conn, keys.node_id))
    return view.render("connections_confirm.html", {
        "how": how, "body": body, "peer_name": keys.name, "peer_node_id": keys.node_id,
        "peer_fingerprint": fingerprint_of(keys.node_id), "fingerprint": fingerprint_of(view.node.me),
        "existing": existing, "direction_words": dict(DIRECTIONS)})


async def _confirm(view: View, how: str) -> web.StreamResponse:
    """Step 3: send the connection request (to the node whose fingerprint was shown)."""
    body, errors = _ask_body(view, how)
    if body is None:
        return _ask_form(view, how, values_from(view), errors, 400)
    try:
        connection, keys = await start_connecting(view.node, view.user.person, body,
                                                  expected_node_id=view.value("node_id") or None)
    except ProtocolError as exc:
        return _ask_form(view, how, values_from(view), _discovery_errors(exc, how), 400)
    return view.redirect(f"/connections/{connection.id}",
                         f"Your request is on its way to {keys.name}. The connection is active once they accept.")


@pages.post("/connections/connect/check", admin_only=True)
async def connect_check(view: View) -> web.StreamResponse:
    return await _check(view, KEY)


@pages.post("/connections/connect", admin_only=True)
async def connect(view: View) -> web.StreamResponse:
    return await _confirm(view, KEY)


@pages.post("/connections/request/check", admin_only=True, multiline=("message",))
async def request_check(view: View) -> web.StreamResponse:
    return await _check(view, REQUEST)


@pages.post("/connections/request", admin_only=True, multiline=("message",))
async def request(view: View) -> web.StreamResponse:
    return await _confirm(view, REQUEST)
