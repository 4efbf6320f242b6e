"""The forms that create and change deals, and (for admins) create a workflow.

A new deal is placed in a workflow and stage, may name contacts already on file (from a
contact's page: ``/deals/new?contact=<id>``) and may bring a new client, created with the
deal in one transaction. Errors follow the GOV.UK pattern: every field's problem at once
from the model's checks, then the store's refusal (an owner no longer active, a stage of
another workflow) on the field it names. The same models and store functions as the API
(``DealIn``, ``DealPatch``, ``WorkflowIn``), so the same rules.
"""

from __future__ import annotations

import re
import sqlite3
import urllib.parse
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from node.crm import store as crm
from node.crm.errors import CrmError
from node.crm.models import ContactIn, DealContact, DealIn, DealPatch, WorkflowIn
from node.crm.store import board as boards
from node.web.deals_pages import deal_of
from node.web.form_errors import crm_errors, in_order, validation_errors
from node.web.views import Pages, View

pages = Pages()

#: The form's fields, in its order.
LABELS = {
    "workflow_id": "Workflow", "stage_id": "Stage", "title": "Title", "amount": "Amount",
    "currency": "Currency", "deal_type": "Type", "owner_user_id": "Owner", "folder": "Folder",
    "source": "Source", "summary": "Summary", "contacts": "Contacts",
}
CLIENT_LABELS = {"client_first_name": "First name", "client_last_name": "Last name",
                 "client_email": "E-mail address", "client_phone": "Phone number"}
STORE_MESSAGES = {
    "workflow_id": "Choose a workflow", "stage_id": "Choose a stage of the workflow you chose",
    "owner_user_id": "Choose an active user as the owner",
    "contacts": "A contact you chose is no longer on file: choose again",
}
#: The rules of these fields, in plain words, whatever was wrong.
FIELD_MESSAGES = {
    "title": "Enter a title for the deal, up to 200 characters",
    "amount": "Enter the amount as a number, such as 650000 or 650,000.50",
    "currency": "Enter the currency of the amount as three letters, such as AUD",
    "deal_type": "Enter the type in letters, digits and dashes, such as home-loan",
}
CONTACT_MESSAGES = {
    "email": "Enter the client's e-mail address like name@example.com",
    "phone": "Enter the client's phone number in digits, spaces, ( ) - and a leading +",
}
TEXT_FIELDS = ("title", "deal_type", "amount", "currency", "owner_user_id", "folder", "source", "summary")


def _deal_values(view: View) -> dict[str, Any]:
    """The form as the models take it: amounts without separators, a currency in capitals,
    a type as a lowercase token ("Home loan" is ``home-loan``)."""
    values: dict[str, Any] = {name: view.value(name) for name in TEXT_FIELDS}
    values["summary"] = view.form.get("summary", "").strip()
    values["amount"] = re.sub(r"[,\s]", "", values["amount"])
    values["currency"] = values["currency"].upper()
    values["deal_type"] = re.sub(r"\s+", "-", values["deal_type"].lower())
    return values


async def _choices(view: View, *, include_user: str | None = None) -> dict[str, Any]:
    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        users = crm.list_users(conn, active_only=True)
        if include_user and all(u.id != include_user for u in users):
            users.append(crm.get_user(conn, include_user))
        return {"workflows": crm.list_workflows(conn),
                "owners": [(u.id, u.name + ("" if u.active else " (deactivated)")) for u in users]}

    return await view.node.db.read(read)


async def _new_context(view: View, values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    ids = values.get("contact_ids", [])

    def read(conn: sqlite3.Connection) -> list[Any]:
        found = boards.contacts_by_id(conn, ids)  # one that is gone is left out
        return [found[i] for i in ids if i in found]

    linked = await view.node.db.read(read)
    return {**await _choices(view), "values": values, "errors": in_order(errors, {**LABELS, **CLIENT_LABELS}),
            "linked": linked}


@pages.get("/deals/new", "deal_form.html")
async def new_deal(view: View) -> dict[str, Any]:
    query = view.request.query
    choices = await _choices(view)
    workflow = next((w for w in choices["workflows"] if w.name.casefold() == query.get("workflow", "").casefold()),
                    choices["workflows"][0] if choices["workflows"] else None)
    values = {**dict.fromkeys([*TEXT_FIELDS, *CLIENT_LABELS], ""),
              "workflow_id": workflow.id if workflow else "", "stage_id": workflow.stages[0].id if workflow else "",
              "owner_user_id": view.user.id, "contact_ids": query.getall("contact", [])[:20]}
    return await _new_context(view, values, {})


def _client(view: View) -> tuple[ContactIn | None, dict[str, str]]:
    fields = {name: view.value(f"client_{name}") for name in ("first_name", "last_name", "email", "phone")}
    if not any(fields.values()):
        return None, {}
    if not (fields["first_name"] or fields["last_name"]):
        return None, {"client_first_name": "Enter the new client's first or last name"}
    try:
        return ContactIn.model_validate(fields), {}
    except ValidationError as exc:
        return None, validation_errors(exc, CLIENT_LABELS, fallback="client_first_name",
                                       aliases={n: f"client_{n}" for n in fields},
                                       messages={f"client_{k}": v for k, v in CONTACT_MESSAGES.items()})


@pages.post("/deals/new", multiline=("summary",))
async def create_deal(view: View) -> web.StreamResponse:
    values = _deal_values(view)
    values.update(workflow_id=view.value("workflow_id"), stage_id=view.value("stage_id"),
                  contact_ids=view.values("contact_ids")[:20])
    values.update({name: view.value(name) for name in CLIENT_LABELS})
    errors: dict[str, str] = {}
    if not values["workflow_id"]:
        errors["workflow_id"] = "Choose a workflow"
    if not values["stage_id"]:
        errors["stage_id"] = "Choose a stage"
    data = {k: values[k] for k in ("workflow_id", "stage_id", *TEXT_FIELDS)}
    data["contacts"] = [{"contact_id": c, "role": "primary" if i == 0 else "co-applicant"}
                        for i, c in enumerate(values["contact_ids"])]
    deal: DealIn | None = None
    try:
        deal = DealIn.model_validate(data)
    except ValidationError as exc:
        errors = {**validation_errors(exc, LABELS, messages=FIELD_MESSAGES, fallback="title"), **errors}
    client, client_errors = _client(view)
    errors.update(client_errors)
    if errors or deal is None:
        return view.render("deal_form.html", await _new_context(view, values, errors), status=400)

    def create(conn: sqlite3.Connection, ctx: Any) -> str:
        contacts = list(deal.contacts)
        if client is not None:
            made = crm.create_contact(conn, client, now=ctx.now)
            contacts.append(DealContact(contact_id=made.id, role="co-applicant" if contacts else "primary"))
        return crm.create_deal(conn, deal.model_copy(update={"contacts": contacts}), now=ctx.now).id

    try:
        deal_id = await view.node.transact(create)
    except CrmError as exc:
        errors = crm_errors(exc, LABELS, messages={**FIELD_MESSAGES, **STORE_MESSAGES}, fallback="title")
        return view.render("deal_form.html", await _new_context(view, values, errors), status=400)
    return view.redirect(f"/deals/{deal_id}", f"The deal “{deal.title}” is created.")


async def _edit_context(view: View, deal_id: str, values: dict[str, Any] | None,
                        errors: dict[str, str]) -> dict[str, Any]:
    deal = await view.node.db.read(lambda conn: deal_of(conn, deal_id))
    if values is None:
        values = {k: (getattr(deal, k) or "") for k in TEXT_FIELDS}
    return {**await _choices(view, include_user=deal.owner_user_id), "deal": deal, "values": values,
            "errors": in_order(errors, LABELS)}


@pages.get("/deals/{id}/edit", "deal_edit.html")
async def edit_deal(view: View) -> dict[str, Any]:
    return await _edit_context(view, view.request.match_info["id"], None, {})


@pages.post("/deals/{id}/edit", multiline=("summary",))
async def save_deal(view: View) -> web.StreamResponse:
    deal_id = view.request.match_info["id"]
    values = _deal_values(view)
    try:
        patch = DealPatch.model_validate(values)
    except ValidationError as exc:
        errors = validation_errors(exc, LABELS, messages=FIELD_MESSAGES, fallback="title")
        return view.render("deal_edit.html", await _edit_context(view, deal_id, values, errors), status=400)
    try:
        deal = await view.node.transact(lambda conn, ctx: crm.update_deal(conn, deal_id, patch, now=ctx.now))
    except CrmError as exc:
        if exc.code == "not_found" and exc.field is None:
            raise
        errors = crm_errors(exc, LABELS, messages={**FIELD_MESSAGES, **STORE_MESSAGES}, fallback="title")
        return view.render("deal_edit.html", await _edit_context(view, deal_id, values, errors), status=400)
    return view.redirect(f"/deals/{deal.id}", "Your changes are saved.")


WORKFLOW_LABELS = {"name": "Name", "stages": "Stages", "won": "Stage that means won", "lost": "Stage that means lost"}


@pages.get("/deals/workflows/new", "workflow_form.html", admin_only=True)
async def new_workflow(view: View) -> dict[str, Any]:
    return {"values": {"name": "", "stages": "", "won": "", "lost": ""}, "errors": {}}


@pages.post("/deals/workflows/new", admin_only=True, multiline=("stages",))
async def create_workflow(view: View) -> web.StreamResponse:
    values = {"name": view.value("name"), "stages": view.form.get("stages", ""), "won": view.value("won"),
              "lost": view.value("lost")}
    stages = [line.strip() for line in values["stages"].split("\n") if line.strip()]
    outcomes = {name: outcome for name, outcome in ((values["won"], "won"), (values["lost"], "lost")) if name}
    errors: dict[str, str] = {}
    if not stages:
        errors["stages"] = "Enter the stages, one a line"
    for field, name in (("won", values["won"]), ("lost", values["lost"])):
        if name and name.casefold() not in {s.casefold() for s in stages}:
            errors[field] = f"{WORKFLOW_LABELS[field]} must be one of the stages above, as written there"
    try:
        data = WorkflowIn.model_validate({"name": values["name"], "owner_user_id": view.user.id,
                                          "stage_names": stages or ["-"], "outcomes": outcomes})
    except ValidationError as exc:
        errors = {**validation_errors(exc, WORKFLOW_LABELS, fallback="name",
                                      messages={"name": "Enter a name for the workflow, up to 200 characters"},
                                      aliases={"stage_names": "stages", "outcomes": "won"}), **errors}
    if errors:
        return view.render("workflow_form.html", {"values": values, "errors": in_order(errors, WORKFLOW_LABELS)},
                           status=400)
    try:
        workflow = await view.node.transact(lambda conn, ctx: crm.create_workflow(conn, data, now=ctx.now))
    except CrmError as exc:
        errors = crm_errors(exc, WORKFLOW_LABELS, fallback="name")
        return view.render("workflow_form.html", {"values": values, "errors": errors}, status=400)
    return view.redirect("/deals?workflow=" + urllib.parse.quote(workflow.name),
                         f"The workflow {workflow.name} is created.")
