"""The client's fact find: one section of their flow per page, saved as they go, errors
beside each field (GOV.UK pattern), then "check your answers" before submitting.

A section's page reads only its flow's subsections; its answers are saved when the whole
page is valid, and the client goes on to the next section not yet answered (or back to
"check your answers" when they came from there). Submitting is recorded; the client may
still change answers after, and every change is in the deal's timeline.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from node.crm.errors import CrmError
from node.portal import client_data
from node.portal import settings as portal
from node.portal.catalogue import Section, catalogue, field_name, form_values, read_section
from node.web.client_views import ClientPages, ClientView

pages = ClientPages()


def _flow(conn: sqlite3.Connection, view: ClientView) -> portal.Flow:
    return portal.get_flow(conn, view.me.flow_id)


def _section(flow: portal.Flow, key: str) -> tuple[Section, int, list[Section]]:
    sections = flow.chosen()
    for i, section in enumerate(sections):
        if section.key == key:
            return section, i, sections
    raise CrmError("not_found", "Your fact find has no such section.")


@pages.get("/client/fact-find")
async def start(view: ClientView) -> web.StreamResponse:
    flow = await view.node.db.read(lambda conn: _flow(conn, view))
    for section in flow.chosen():
        if section.key not in view.me.answers:
            return view.redirect(f"/client/fact-find/{section.key}")
    return view.redirect("/client/check-answers")


async def _context(view: ClientView, key: str, values: dict[str, str] | None = None,
                   errors: dict[str, str] | None = None) -> dict[str, Any]:
    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        flow = _flow(conn, view)
        section, index, sections = _section(flow, key)
        video = portal.videos(conn, flow.owner_user_id).get(f"flow:{flow.id}:{section.key}")
        return {"flow": flow, "section": section, "index": index, "count": len(sections), "video": video}

    data = await view.node.db.read(read)
    section = data["section"]
    chosen = data["flow"].sections[section.key]
    subs = [s for s in section.subsections if s.key in chosen]
    saved = form_values(section, view.me.answers.get(section.key, {}))
    labels = {field_name(sub, f, row): f.label for sub in subs
              for row in ([None] if not sub.repeat else range(1, sub.repeat + 1)) for f in sub.fields}
    return {**data, "subs": subs, "values": values if values is not None else saved, "errors": errors or {},
            "field_name": field_name, "labels": labels, "back_to": view.request.query.get("from", "")}


@pages.get("/client/fact-find/{section}", "client/section.html")
async def section_page(view: ClientView) -> dict[str, Any]:
    return await _context(view, view.request.match_info["section"])


#: The fact find's fields that may hold several lines.
TEXTAREAS = tuple(field_name(sub, f) for s in catalogue().sections for sub in s.subsections for f in sub.fields
                  if f.type == "textarea" and not sub.repeat)


@pages.post("/client/fact-find/{section}", "client/section.html", multiline=TEXTAREAS)
async def save_section(view: ClientView) -> web.StreamResponse:
    key = view.request.match_info["section"]
    flow = await view.node.db.read(lambda conn: _flow(conn, view))
    section, index, sections = _section(flow, key)
    answers, errors = read_section(section, flow.sections[key], view.form)
    if errors:
        context = await _context(view, key, values={k: str(v) for k, v in view.form.items()}, errors=errors)
        context["back_to"] = view.value("from")
        return view.render("client/section.html", context, status=400)
    client = view.me
    await view.node.transact(lambda conn, ctx: client_data.save_section(conn, client, key, answers,
                                                                        section.title, ctx.now))
    if view.value("from") == "check":
        return view.redirect("/client/check-answers", f"{section.title} saved.")
    done = {*client.answers, key}
    following = next((s for s in sections[index + 1:] if s.key not in done), None) or \
        next((s for s in sections if s.key not in done), None)
    if following is None:
        return view.redirect("/client/check-answers", f"{section.title} saved.")
    return view.redirect(f"/client/fact-find/{following.key}", f"{section.title} saved.")


@pages.get("/client/check-answers", "client/check_answers.html")
async def check_answers(view: ClientView) -> dict[str, Any]:
    def read(conn: sqlite3.Connection) -> tuple[list[dict[str, Any]], str]:
        return (client_data.answers_of(conn, view.me),
                portal.get_settings(conn, view.me.broker_user_id).privacy_disclosure)

    sections, disclosure = await view.node.db.read(read)
    return {"sections": sections, "missing": [s for s in sections if not s["done"]], "disclosure": disclosure}


@pages.post("/client/submit")
async def submit(view: ClientView) -> web.StreamResponse:
    client = view.me
    sections = await view.node.db.read(lambda conn: client_data.answers_of(conn, client))
    missing = [s["title"] for s in sections if not s["done"]]
    if missing:
        raise CrmError("invalid", "Answer every section before you submit: " + ", ".join(missing) + ".")
    await view.node.transact(lambda conn, ctx: client_data.submit(conn, client, ctx.now))
    return view.redirect("/client/dashboard", "Your answers are sent to your broker. Thank you.")
