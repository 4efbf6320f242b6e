"""Refer a deal: one form, a preview of what travels and what stays, a confirmation that
says a referral cannot be recalled, then the send (Salestrekker's referral, Blitz's green
and red details tab).

No JavaScript is needed: the preview and confirmation pages carry the choices in hidden
fields, and every step checks them all again with :func:`node.federation.referring.check_referral`,
the same rules ``POST /api/v1/deals/{id}/refer`` applies. The final send trusts nothing
it carried: what the connection allows, who consented and which stage is later are
recomputed from the database, and ``refer_deal`` (or ``convert_opportunity``, when the
form came from an opportunity) checks them once more inside the transaction that sends.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from node.base.errors import ApiError
from node.crm import store as crm
from node.crm.errors import CrmError
from node.crm.models import Deal
from node.federation import referring, sharing
from node.federation.opportunities import convert_opportunity, get_opportunity
from node.federation.outbox import TxContext
from node.web.views import Pages, View

pages = Pages()

TEXTAREAS = ("message", "disclosure_text")
#: A referral type, as the protocol has it (``protocol.models.Token``).
TOKEN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
METHODS = (("verbal", "Verbal (in person or by phone)"), ("written", "Written (signed)"),
           ("electronic", "Electronic (e-mail, web form)"))
#: The form's field that each of ReferDealIn's fields is entered in.
FORM_FIELD = {"connection_id": "connection", "referral_type": "referral_type", "referring_agent_user_id": "agent",
              "shared_fields": "fields", "message": "message", "consent": "consented",
              "consent.contact_ids": "consented", "contact_ids": "consented", "method": "method",
              "disclosure_version": "disclosure_version", "disclosure_text": "disclosure_text",
              "when_stage_id": "when_stage", "again": "again", "deal_id": "consented"}


@dataclass
class Choices:
    """What the person chose, as the form sends it."""

    connection: str = ""
    referral_type: str = ""
    agent: str = ""
    fields: list[str] = field(default_factory=list)
    message: str = ""
    consented: list[str] = field(default_factory=list)
    method: str = ""
    disclosure_version: str = ""
    disclosure_text: str = ""
    when_stage: str = ""
    again: bool = False
    opportunity: str = ""

    @classmethod
    def from_form(cls, view: View) -> Choices:
        return cls(connection=view.value("connection"), referral_type=view.value("referral_type"),
                   agent=view.value("agent"), fields=view.values("fields"),
                   message=view.form.get("message", "").strip(), consented=view.values("consented"),
                   method=view.value("method"), disclosure_version=view.value("disclosure_version"),
                   disclosure_text=view.form.get("disclosure_text", "").strip(),
                   when_stage=view.value("when_stage"), again=view.value("again") == "yes",
                   opportunity=view.value("opportunity"))

    def carried(self) -> list[tuple[str, str]]:
        """The choices as hidden fields, for the next step."""
        pairs = [(name, getattr(self, name)) for name in (
            "connection", "referral_type", "agent", "message", "method", "disclosure_version", "disclosure_text",
            "when_stage", "opportunity")]
        pairs += [("fields", f) for f in self.fields] + [("consented", c) for c in self.consented]
        if self.again:
            pairs.append(("again", "yes"))
        return pairs

    def body(self) -> referring.ReferDealIn:
        consent = {"contact_ids": self.consented, "method": self.method or None,
                   "disclosure_version": self.disclosure_version, "disclosure_text": self.disclosure_text}
        return referring.ReferDealIn.model_validate({
            "connection_id": self.connection, "referral_type": self.referral_type or None,
            "referring_agent_user_id": self.agent or None, "shared_fields": self.fields, "message": self.message,
            "consent": consent, "when_stage_id": self.when_stage or None, "again": self.again})


@dataclass
class Form:
    """Everything the form offers for one deal, read in one go."""

    deal: Deal
    usable: list[sharing.Usable]
    clients: list[tuple[str, str, str]]  # id, name, role
    agents: list[tuple[str, str]]
    later_stages: list[tuple[str, str]]
    stage: str
    opportunity: Any = None

    def chosen(self, connection_id: str) -> sharing.Usable | None:
        return next((u for u in self.usable if u.id == connection_id), None)


def _form(conn: sqlite3.Connection, deal_id: str, opportunity_id: str) -> Form:
    deal = crm.get_deal(conn, deal_id)
    workflow = crm.get_workflow(conn, deal.workflow_id)
    here = next(s for s in workflow.stages if s.id == deal.stage_id)
    clients = []
    for link in deal.contacts:
        contact = crm.get_contact(conn, link.contact_id)
        clients.append((contact.id, contact.display_name, link.role))
    opportunity = None
    if opportunity_id:
        opportunity = get_opportunity(conn, opportunity_id)
        if opportunity.deal_id != deal.id:
            raise CrmError("not_found", "That opportunity is not about this deal.", "opportunity")
        if opportunity.state != "open":
            raise ApiError(409, "invalid_transition", f"This opportunity is already {opportunity.state}: it cannot"
                           " be turned into a referral again.", field="opportunity")
    return Form(deal, sharing.usable_connections(conn, deal), clients,
                [(u.id, u.name) for u in crm.list_users(conn, active_only=True)],
                [(s.id, s.name) for s in workflow.stages if s.position > here.position], here.name, opportunity)


def _problems(form: Form, choices: Choices) -> dict[str, str]:
    """What the person must fix, in their words, before the domain's own checks."""
    errors: dict[str, str] = {}
    chosen = form.chosen(choices.connection)
    if chosen is None:
        errors["connection"] = ("Choose the organisation to refer to." if not choices.connection
                                else "This deal cannot be referred to that organisation.")
    if not choices.referral_type:
        errors["referral_type"] = "Enter the type of referral, for example mortgage."
    elif not TOKEN.fullmatch(choices.referral_type):
        errors["referral_type"] = ("Write the type in lower-case letters, digits, - or _, with no spaces (for"
                                   " example mortgage).")
    if choices.agent not in {a for a, _ in form.agents}:
        errors["agent"] = "Choose the referring agent."
    if chosen is not None:
        refused = [sharing.FIELD_LABELS.get(f, f) for f in choices.fields if f not in chosen.allowed]
        if refused:
            errors["fields"] = f"{chosen.name} does not accept: {', '.join(refused)}. Untick it."
    if not choices.consented:
        errors["consented"] = "Tick each client who consented to be referred. A client without consent is not referred."
    elif not set(choices.consented) <= {c for c, _, _ in form.clients}:
        errors["consented"] = "A client you ticked is not on this deal any more. Check the clients again."
    if choices.method not in {m for m, _ in METHODS}:
        errors["method"] = "Choose how the client gave consent."
    if not choices.disclosure_version:
        errors["disclosure_version"] = "Enter the version of the privacy disclosure the client was shown."
    if not choices.disclosure_text:
        errors["disclosure_text"] = "Paste the exact text of the privacy disclosure the client was shown."
    if choices.when_stage and choices.when_stage not in {s for s, _ in form.later_stages}:
        errors["when_stage"] = "Choose a stage after the deal's current one, or send now."
    return errors


def _field_of(loc: tuple[Any, ...] | str | None) -> str:
    names = [str(p) for p in loc] if isinstance(loc, tuple) else [loc or ""]
    for name in reversed(names):
        if name in FORM_FIELD:
            return FORM_FIELD[name]
    return "connection"


def _said(exc: ApiError | CrmError, form: Form, choices: Choices) -> str:
    """A refusal of the domain's, in the form's words (and without the ids the API gives)."""
    if exc.code == "already_referred":
        name = form.chosen(choices.connection).name  # type: ignore[union-attr]
        return (f"This deal is already referred to {name}, and that referral is still open (or waits for a"
                " stage). To send another one anyway, tick \"Refer it there again anyway\".")
    return exc.message[:1].upper() + exc.message[1:] + ("" if exc.message.endswith(".") else ".")


async def _check(view: View, deal_id: str, choices: Choices) -> tuple[Form, dict[str, str], Any]:
    """The form, the problems, and (when there are none) the checked referral with its preview."""
    actor_id = view.user.id
    ctx = view.node.context()

    def read(conn: sqlite3.Connection) -> tuple[Form, dict[str, str], Any]:
        form = _form(conn, deal_id, choices.opportunity)
        errors = _problems(form, choices)
        if errors:
            return form, errors, None
        try:
            body = choices.body()
            checked = referring.check_referral(conn, ctx, deal_id, body, crm.get_user(conn, actor_id))
        except ValidationError as exc:
            first = exc.errors()[0]
            return form, {_field_of(first["loc"]): f"This is not valid: {first['msg']}."}, None
        except (ApiError, CrmError) as exc:
            return form, {_field_of(exc.field): _said(exc, form, choices)}, None
        allowed = form.chosen(choices.connection).allowed  # type: ignore[union-attr]
        return form, {}, (checked, sharing.preview(conn, checked.deal, checked.offer.wire(), allowed))

    return await view.node.db.read(read)


def _render(view: View, form: Form, choices: Choices, errors: dict[str, str], *, status: int = 200) -> web.Response:
    chosen = form.chosen(choices.connection)
    return view.render("refer.html", {
        "form": form, "choices": choices, "errors": errors, "chosen": chosen, "methods": METHODS,
        "labels": sharing.FIELD_LABELS, "required": referring.REQUIRED_FIELDS,
        "not_allowed": [sharing.FIELD_LABELS[f] for f in sharing.FIELD_LABELS if chosen and f not in chosen.allowed],
    }, status=status)


@pages.get("/deals/{id}/refer")
async def refer_form(view: View) -> web.StreamResponse:
    deal_id, query = view.request.match_info["id"], view.request.query
    opportunity_id = query.get("opportunity", "").strip()
    form = await view.node.db.read(lambda conn: _form(conn, deal_id, opportunity_id))
    chosen = form.chosen(query.get("connection", "")) or (form.usable[0] if form.usable else None)
    referral_type = (query.get("type", "").strip() or (form.opportunity.referral_type if form.opportunity else "")
                     or (chosen.referral_type if chosen else None) or form.deal.deal_type or "")
    choices = Choices(connection=chosen.id if chosen else "", referral_type=referral_type, agent=view.user.id,
                      opportunity=opportunity_id)
    return _render(view, form, choices, {})


@pages.post("/deals/{id}/refer", multiline=TEXTAREAS)
async def refer_again(view: View) -> web.StreamResponse:
    """The form again with what was entered: after choosing another organisation (its
    fields), or from the preview's "Change" button."""
    deal_id, choices = view.request.match_info["id"], Choices.from_form(view)
    form = await view.node.db.read(lambda conn: _form(conn, deal_id, choices.opportunity))
    chosen = form.chosen(choices.connection)
    if chosen is not None:
        choices.fields = [f for f in choices.fields if f in chosen.allowed]
    return _render(view, form, choices, {})


async def _checked_step(view: View, template: str, extra: Callable[[Any, Choices], dict[str, Any]]) -> web.StreamResponse:
    """A step after the form (preview, confirmation): everything checked again, the form
    again with its errors, or ``template`` with what will travel."""
    deal_id, choices = view.request.match_info["id"], Choices.from_form(view)
    form, errors, result = await _check(view, deal_id, choices)
    if errors:
        return _render(view, form, choices, errors, status=400)
    checked, shown = result
    return view.render(template, {"form": form, "choices": choices, "checked": checked, "preview": shown,
                                  **extra(form, choices)})


@pages.post("/deals/{id}/refer/preview", multiline=TEXTAREAS)
async def refer_preview(view: View) -> web.StreamResponse:
    return await _checked_step(view, "refer_preview.html", lambda form, choices: {})


@pages.post("/deals/{id}/refer/confirm", multiline=TEXTAREAS)
async def refer_confirm(view: View) -> web.StreamResponse:
    return await _checked_step(view, "refer_confirm.html", lambda form, choices: {
        "agent": dict(form.agents)[choices.agent],
        "clients": [n for c, n, _ in form.clients if c in choices.consented]})


@pages.post("/deals/{id}/refer/send", multiline=TEXTAREAS)
async def refer_send(view: View) -> web.StreamResponse:
    deal_id, choices = view.request.match_info["id"], Choices.from_form(view)
    form, errors, result = await _check(view, deal_id, choices)
    if errors:
        return _render(view, form, choices, errors, status=400)
    actor_id = view.user.id
    body = choices.body()

    def send(conn: sqlite3.Connection, ctx: TxContext) -> dict[str, Any]:
        if choices.opportunity:
            return convert_opportunity(conn, ctx, choices.opportunity, body, actor_id)
        return referring.refer_deal(conn, ctx, deal_id, body, crm.get_user(conn, actor_id))

    try:
        sent = await view.node.transact(send)
    except (ApiError, CrmError) as exc:  # something changed since the check: say what
        return _render(view, form, choices, {_field_of(exc.field): _said(exc, form, choices)}, status=409)
    name = result[0].connection_name
    if "referral" in sent:
        return view.redirect(f"/referrals/{sent['referral']['local_id']}",
                             f"Referral sent to {name}. It cannot be recalled.")
    stage = dict(form.later_stages).get(choices.when_stage, "")
    return view.redirect("/referrals?side=sent",
                         f"The referral to {name} will be sent when the deal reaches stage {stage}.")
