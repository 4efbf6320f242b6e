"""The client portal's pages (``/client/``): signing in with e-mail and passcode, asking
for a new passcode, the dashboard (stage bar and video, compliance documents to read and
acknowledge, documents to upload, messages), other applicants' details when the broker
allowed it, and downloads. The fact find is in ``client_factfind``.

Uploads are held in memory (at most ``max_upload_bytes``), checked for their kind, and
sealed before anything reaches the disk (``node.portal.vault``); a download opens and
checks the seal, and a damaged file is refused with a clear error, never served.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import urllib.parse
from typing import Any

from aiohttp import web

from node.base.ids import new_id
from node.base.logs import get_logger
from node.crm import store as crm
from node.crm.document_files import ACCEPT, ALLOWED_NAMES, megabytes, path_of, too_large
from node.crm.errors import CrmError
from node.portal import access, client_data, vault
from node.portal import settings as portal
from node.web import uploads
from node.web.client_views import CLIENT_COOKIE, ClientPages, ClientView
from node.web.views import safe_next

pages = ClientPages()
log = get_logger("node.web.client")


# --- signing in --------------------------------------------------------------------------


def _next(view: ClientView) -> str:
    target = view.value("next") or view.request.query.get("next", "")
    return safe_next(target) if target.startswith("/client/") else "/client/"


@pages.get("/client/sign-in", "client/sign_in.html", signed_in=False)
async def sign_in_page(view: ClientView) -> dict[str, Any]:
    return {"errors": {}, "email": "", "next": _next(view)}


@pages.post("/client/sign-in", "client/sign_in.html", signed_in=False)
async def sign_in(view: ClientView) -> web.StreamResponse:
    email, code = view.value("email"), view.value("passcode")
    errors = {}
    if not email:
        errors["email"] = "Enter your e-mail address"
    if not re.fullmatch(r"[0-9 ]{6,7}", code) or len(code.replace(" ", "")) != 6:
        errors["passcode"] = "Enter the 6-digit passcode we sent you" if not code else "The passcode is 6 digits"
    if not errors:
        keys_dir, now = view.config.keys_dir, view.node.clock.now()

        def attempt(conn: sqlite3.Connection) -> tuple[str | None, str]:
            try:
                return access.sign_in(conn, keys_dir, email, code, now), ""
            except access.SignInRefused as exc:
                return None, str(exc)

        sid, problem = await view.node.db.write(attempt)
        if sid is not None:
            response = view.redirect(_next(view))
            view.set_client_cookie(response, CLIENT_COOKIE, sid)
            return response
        errors["passcode"] = problem
    return view.render("client/sign_in.html", {"errors": errors, "email": email, "next": _next(view)}, status=400)


@pages.get("/client/passcode", "client/passcode.html", signed_in=False)
async def passcode_page(view: ClientView) -> dict[str, Any]:
    return {"errors": {}, "email": ""}


@pages.post("/client/passcode", "client/passcode.html", signed_in=False)
async def request_passcode(view: ClientView) -> web.StreamResponse:
    email = view.value("email")
    if not email or "@" not in email or len(email) > 254:
        return view.render("client/passcode.html", {"errors": {"email": "Enter your e-mail address, like "
                                                               "name@example.com"}, "email": email}, status=400)

    def send(conn: sqlite3.Connection, ctx: Any) -> None:
        if access.request_passcode(conn, ctx.config, email, ctx.now):
            ctx.effects.mail = True

    await view.node.transact(send)
    return view.redirect("/client/sign-in", "If that address has a client portal here, a new passcode is on its "
                                            "way. You can ask again in a minute.")


@pages.post("/client/sign-out", signed_in=False)
async def sign_out(view: ClientView) -> web.StreamResponse:
    sid = view.request.cookies.get(CLIENT_COOKIE)
    if sid:
        now = view.node.clock.now()
        await view.node.db.write(lambda conn: access.end_session(conn, sid, now))
    response = view.redirect("/client/sign-in", "You are signed out.")
    view.set_client_cookie(response, CLIENT_COOKIE, None)
    return response


@pages.get("/client/")
async def home(view: ClientView) -> web.StreamResponse:
    client = view.me
    settings = await view.node.db.read(lambda conn: portal.get_settings(conn, client.broker_user_id))
    if settings.fact_find_first and not client.submitted:
        return view.redirect("/client/fact-find")
    return view.redirect("/client/dashboard")


# --- the dashboard -----------------------------------------------------------------------


@pages.get("/client/dashboard", "client/dashboard.html")
async def dashboard_page(view: ClientView) -> dict[str, Any]:
    return await dashboard(view)


async def dashboard(view: ClientView) -> dict[str, Any]:
    client = view.me

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        settings = portal.get_settings(conn, client.broker_user_id)
        deal = crm.get_deal(conn, client.deal_id)
        workflow = crm.get_workflow(conn, deal.workflow_id)
        stage = next(s for s in workflow.stages if s.id == deal.stage_id)
        video = portal.videos(conn, client.broker_user_id).get(f"stage:{stage.id}") if settings.show_status_bar else None
        people = client_data.visible(conn, client)
        sections = client_data.answers_of(conn, client)
        broker = conn.execute("SELECT name FROM users WHERE id = ?", (client.broker_user_id,)).fetchone()
        return {"settings": settings, "deal": deal, "stages": workflow.stages, "stage": stage, "video": video,
                "compliance": client_data.compliance(conn, client),
                "requests": client_data.requests(conn, people), "others": people[1:],
                "messages": client_data.messages(conn, client.access_id), "sections": sections,
                "todo": [s for s in sections if not s["done"]], "broker": broker["name"] if broker else "Your broker"}

    return {**await view.node.db.read(read), "errors": {}, "accept": ACCEPT, "allowed": ALLOWED_NAMES,
            "max_upload": megabytes(view.config.max_upload_bytes)}


@pages.get("/client/applicants/{id}", "client/applicant.html")
async def applicant(view: ClientView) -> dict[str, Any]:
    wanted = view.request.match_info["id"]

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        other = next((c for c in client_data.visible(conn, view.me)[1:] if c.access_id == wanted), None)
        if other is None:
            raise CrmError("not_found", "There is no such applicant in your portal.")
        return {"other": other, "sections": client_data.answers_of(conn, other)}

    return await view.node.db.read(read)


# --- compliance documents ----------------------------------------------------------------


def _attachment(name: str, data: bytes | None, content_type: str, path: Any = None) -> web.StreamResponse:
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", name).strip()[:150] or "document"
    headers = {"Content-Type": content_type, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
               "Content-Disposition": f'attachment; filename="{fallback}"; '
                                      f"filename*=UTF-8''{urllib.parse.quote(name, safe='')}",
               "Content-Security-Policy": "default-src 'none'; sandbox"}
    if path is not None:
        return web.FileResponse(path, headers=headers)
    return web.Response(body=data, headers=headers)


@pages.get("/client/documents/{id}")
async def read_document(view: ClientView) -> web.StreamResponse:
    doc = await view.node.db.read(lambda conn: client_data.compliance_document(conn, view.me,
                                                                               view.request.match_info["id"]))
    path = path_of(view.config.documents_dir, doc.sha256)
    if not path.is_file() or doc.content_type is None:
        raise CrmError("not_found", f"The file of {doc.name} is missing. Tell your broker.")
    return _attachment(doc.name, None, doc.content_type, path)


@pages.post("/client/documents/{id}/acknowledge")
async def acknowledge(view: ClientView) -> web.StreamResponse:
    client, document_id = view.me, view.request.match_info["id"]
    name = await view.node.transact(lambda conn, ctx: client_data.acknowledge(conn, client, document_id, ctx.now))
    return view.redirect("/client/dashboard#compliance", f"You acknowledged {name}.")


# --- required documents ------------------------------------------------------------------


async def _dashboard_error(view: ClientView, message: str, status: int) -> web.Response:
    context = await dashboard(view)
    context["errors"] = {"file": message}
    context["error_request"] = view.request.match_info["id"]
    return view.render("client/dashboard.html", context, status=status)


@pages.post("/client/requests/{id}/upload", raw_body=True)
async def upload(view: ClientView) -> web.StreamResponse:
    client, request_id = view.me, view.request.match_info["id"]
    item = await view.node.db.read(lambda conn: client_data.request_for(conn, client, request_id))
    limit = view.config.max_upload_bytes
    if view.request.content_length is not None and view.request.content_length > limit + 64 * 1024:
        return await _dashboard_error(view, too_large(limit), 413)
    name, data = "", bytearray()
    try:
        async for part in uploads.parts(view):
            if part.name == "file" and part.filename and not name:
                name = part.filename.replace("\\", "/").rsplit("/", 1)[-1].strip()[:200]
                async for piece in uploads.pieces(view, part):
                    data += piece
                    if len(data) > limit:
                        return await _dashboard_error(view, too_large(limit), 413)
        if not name:
            raise CrmError("invalid", "Choose a file to upload", "file")
        kind = vault.check_kind(name, bytes(data))
    except CrmError as exc:
        return await _dashboard_error(view, exc.message, 400)
    file_id = new_id("cfile", view.node.clock.now())
    sha256 = await asyncio.to_thread(vault.seal, view.config.data_dir, view.config.keys_dir, file_id, bytes(data))
    try:
        await view.node.transact(lambda conn, ctx: client_data.record_file(
            conn, client, request_id, file_id=file_id, name=name, content_type=kind.content_type,
            size_bytes=len(data), sha256=sha256, now=ctx.now))
    except BaseException:
        vault.remove(view.config.data_dir, file_id)
        raise
    return view.redirect("/client/dashboard#documents", f"{name} is uploaded for {item['name']}.")


async def send_file(view: ClientView | Any, row: Any,
                    advice: str = "Upload it again from your dashboard.") -> web.StreamResponse:
    """A client file, opened and checked; a damaged one is an error page, never served,
    that says what to do (``advice``: the client's, or the broker's)."""
    try:
        data = await asyncio.to_thread(vault.unseal, view.config.data_dir, view.config.keys_dir, row["id"],
                                       row["sha256"])
    except vault.DamagedFile as exc:
        log.error("client file damaged", file_id=row["id"], why=str(exc))
        # a sentence (capital first), so the console's error page leads with it
        raise CrmError("conflict", f"The file {row['name']} is damaged ({exc}), so it is not served. {advice}"
                       ) from None
    return _attachment(row["name"], data, row["content_type"])


@pages.get("/client/files/{id}")
async def download(view: ClientView) -> web.StreamResponse:
    row = await view.node.db.read(lambda conn: client_data.file_for_client(conn, view.me,
                                                                           view.request.match_info["id"]))
    return await send_file(view, row)


# --- messages ----------------------------------------------------------------------------


@pages.post("/client/messages", multiline=("body",))
async def message(view: ClientView) -> web.StreamResponse:
    client, body = view.me, view.form.get("body", "")

    def add(conn: sqlite3.Connection, ctx: Any) -> None:
        client_data.add_message(conn, client.access_id, body, ctx.now)
        access.event(conn, client.access_id, "Client sent a message", f"{client.name}: {body.strip()[:200]}",
                     ctx.now)

    try:
        await view.node.transact(add)
    except CrmError as exc:
        context = await dashboard(view)
        context["errors"] = {"body": exc.message}
        return view.render("client/dashboard.html", context, status=400)
    return view.redirect("/client/dashboard#messages", "Your message is sent.")


@pages.get("/client", signed_in=False)
async def bare(view: ClientView) -> web.StreamResponse:
    return view.redirect("/client/")
