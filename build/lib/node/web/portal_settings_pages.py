"""Each broker's client portal settings (``/settings/portal``): the status bar, the fact
find first, the privacy disclosure, notifications, dashboard videos per workflow stage;
their flows (``/settings/portal/flows/...``) with a video per section; and the admin's
part (``/admin/portal``): the compliance jurisdiction and SMS credits.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from node.crm import store as crm
from node.crm.errors import CrmError
from node.portal import settings as portal
from node.portal import sms
from node.portal.catalogue import catalogue
from node.web.views import Pages, View

pages = Pages()


async def _context(view: View, errors: dict[str, str] | None = None,
                   settings: portal.PortalSettings | None = None) -> dict[str, Any]:
    me = view.user.id

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        return {"settings": settings or portal.get_settings(conn, me), "flows": portal.list_flows(conn, me),
                "workflows": crm.list_workflows(conn), "videos": portal.videos(conn, me),
                "labels": portal.required_labels(conn)}

    return {**await view.node.db.read(read), "errors": errors or {}, "events": portal.EVENTS,
            "channel_options": {e: [(k, v) for k, v in portal.CHANNELS.items() if e != "invitation" or k != "off"]
                                for e in portal.EVENTS}, "sms_ready": sms.enabled(view.config)}


@pages.get("/settings/portal", "portal_settings.html")
async def settings_page(view: View) -> dict[str, Any]:
    return await _context(view)


@pages.post("/settings/portal", "portal_settings.html", multiline=("privacy_disclosure",))
async def save(view: View) -> web.StreamResponse:
    settings = portal.PortalSettings(
        view.user.id, view.value("show_status_bar") == "on", view.value("fact_find_first") == "on",
        view.form.get("privacy_disclosure", "").strip(),
        {event: view.value(f"notify_{event}") for event in portal.EVENTS})
    try:
        await view.node.transact(lambda conn, ctx: portal.save_settings(conn, settings, ctx.now))
    except CrmError as exc:
        return view.render("portal_settings.html", await _context(view, {exc.field or "privacy_disclosure": exc.message},
                                                                  settings), status=400)
    return view.redirect("/settings/portal", "Your client portal settings are saved.")


@pages.post("/settings/portal/videos", "portal_settings.html")
async def save_videos(view: View) -> web.StreamResponse:
    me = view.user.id
    workflows = await view.node.db.read(crm.list_workflows)
    errors = {}
    for workflow in workflows:
        for stage in workflow.stages:
            url = view.value(f"url-{stage.id}")
            if url:
                try:
                    portal.embed_url(url)
                except CrmError as exc:
                    errors[f"url-{stage.id}"] = f"{workflow.name}, {stage.name}: {exc.message}"
    if errors:
        context = await _context(view, errors)
        context["videos"] = {f"stage:{stage.id}": {"url": view.value(f"url-{stage.id}"),
                                                   "description": view.value(f"description-{stage.id}")}
                             for workflow in workflows for stage in workflow.stages}
        return view.render("portal_settings.html", context, status=400)

    def store(conn: sqlite3.Connection, ctx: Any) -> None:
        for workflow in workflows:
            for stage in workflow.stages:
                portal.set_video(conn, me, stage_id=stage.id, url=view.value(f"url-{stage.id}"),
                                 description=view.value(f"description-{stage.id}"))

    await view.node.transact(store)
    return view.redirect("/settings/portal#videos", "Your dashboard videos are saved.")


# --- flows -------------------------------------------------------------------------------


def _flow_form(view: View, flow: portal.Flow | None, errors: dict[str, str],
               chosen: dict[str, list[str]] | None = None, videos: dict[str, Any] | None = None) -> dict[str, Any]:
    book = catalogue()
    return {"flow": flow, "book": book, "errors": errors, "videos": videos or {},
            "chosen": chosen if chosen is not None else (flow.sections if flow else {}),
            "loan_type": view.value("loan_type") or (flow.loan_type if flow else ""),
            "name": view.value("name") or (flow.name if flow else "")}


@pages.get("/settings/portal/flows/new", "portal_flow.html")
async def new_flow(view: View) -> dict[str, Any]:
    return _flow_form(view, None, {}, {s.key: [sub.key for sub in s.subsections] for s in catalogue().sections})


def _chosen_sections(view: View) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for value in view.values("sections"):
        section, _, sub = value.partition(".")
        out.setdefault(section, []).append(sub)
    return out


async def _save_flow(view: View, flow_id: str | None) -> web.StreamResponse:
    me = view.user.id
    chosen = _chosen_sections(view)
    loan_type, name = view.value("loan_type"), view.value("name")
    errors = portal.check_flow(loan_type, name, chosen)
    flow = None
    if flow_id is not None:
        flow = await view.node.db.read(lambda conn: portal.get_flow(conn, flow_id, me))
    if errors:
        return view.render("portal_flow.html", _flow_form(view, flow, errors, chosen), status=400)
    video_errors = {}
    for section in catalogue().sections:
        url = view.value(f"video-{section.key}")
        if url and flow_id is not None:
            try:
                portal.embed_url(url)
            except CrmError as exc:
                video_errors[f"video-{section.key}"] = f"{section.title}: {exc.message}"
    if video_errors:
        typed = {s.key: {"url": view.value(f"video-{s.key}"), "description": view.value(f"video_description-{s.key}")}
                 for s in catalogue().sections}
        return view.render("portal_flow.html", _flow_form(view, flow, video_errors, chosen, typed), status=400)

    def store(conn: sqlite3.Connection, ctx: Any) -> str:
        saved = portal.save_flow(conn, me, loan_type=loan_type, name=name, sections=chosen, now=ctx.now,
                                 flow_id=flow_id)
        if flow_id is not None:
            for section in catalogue().sections:
                portal.set_video(conn, me, flow_id=saved, section=section.key,
                                 url=view.value(f"video-{section.key}"),
                                 description=view.value(f"video_description-{section.key}"))
        return saved

    await view.node.transact(store)
    return view.redirect("/settings/portal#flows", f"The flow “{name}” is saved.")


@pages.post("/settings/portal/flows/new", "portal_flow.html")
async def create_flow(view: View) -> web.StreamResponse:
    return await _save_flow(view, None)


@pages.get("/settings/portal/flows/{id}", "portal_flow.html")
async def edit_flow(view: View) -> dict[str, Any]:
    flow_id, me = view.request.match_info["id"], view.user.id

    def read(conn: sqlite3.Connection) -> tuple[portal.Flow, dict[str, Any]]:
        return portal.get_flow(conn, flow_id, me), portal.videos(conn, me)

    flow, videos = await view.node.db.read(read)
    mine = {key.rsplit(":", 1)[1]: v for key, v in videos.items() if key.startswith(f"flow:{flow.id}:")}
    return _flow_form(view, flow, {}, None, mine)


@pages.post("/settings/portal/flows/{id}", "portal_flow.html")
async def update_flow(view: View) -> web.StreamResponse:
    return await _save_flow(view, view.request.match_info["id"])


# --- the admin's part --------------------------------------------------------------------


async def _admin_context(view: View, errors: dict[str, str] | None = None) -> dict[str, Any]:
    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        return {"org": portal.org(conn), "jurisdictions": portal.jurisdictions(conn)}

    return {**await view.node.db.read(read), "errors": errors or {}, "sms_ready": sms.enabled(view.config)}


@pages.get("/admin/portal", "admin_portal.html", admin_only=True)
async def admin_portal(view: View) -> dict[str, Any]:
    return await _admin_context(view)


@pages.post("/admin/portal/jurisdiction", "admin_portal.html", admin_only=True)
async def set_jurisdiction(view: View) -> web.StreamResponse:
    chosen = view.value("jurisdiction")
    await view.node.transact(lambda conn, ctx: portal.set_jurisdiction(conn, chosen))
    return view.redirect("/admin/portal", "The compliance documents required before sharing are saved.")


@pages.post("/admin/portal/credits", "admin_portal.html", admin_only=True)
async def top_up(view: View) -> web.StreamResponse:
    raw = view.value("credits")
    if not raw.isdigit() or len(raw) > 6:
        return view.render("admin_portal.html", await _admin_context(
            view, {"credits": "Enter a whole number of credits, like 100"}), status=400)
    try:
        total = await view.node.transact(lambda conn, ctx: portal.top_up_credits(conn, int(raw)))
    except CrmError as exc:
        return view.render("admin_portal.html", await _admin_context(view, {"credits": exc.message}), status=400)
    return view.redirect("/admin/portal", f"Added {int(raw):,} SMS credits: {total:,} left.")
