"""A deal's documents: uploaded from the deal page, downloaded as attachments.

The upload is a multipart form (``raw_body``: CSRF comes in the action's query string).
Its file streams into ``node.crm.document_files`` as it arrives, each piece within
``body_timeout_s``, and is refused past ``max_upload_bytes``, for a kind not on the
allow-list, or for bytes that do not match their kind; only a file that passed is stored
(by SHA-256, once per content) and then recorded in ``documents``. A refused, cut-short
or timed-out upload leaves no file and no row. The deal page shows the refusal beside
the file field.

A download is the stored bytes with the type the file proved to be, as an attachment
(``Content-Disposition`` with an ASCII fallback and the UTF-8 name), ``nosniff``, never
cached. Only documents whose bytes this node holds, on the deal in the URL. Documents
never travel in referrals: the referral builder does not know this folder.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import urllib.parse
from typing import Any

from aiohttp import web

from node.base.logs import get_logger
from node.crm import document_files as files
from node.crm import store as crm
from node.crm.errors import CrmError
from node.crm.models import DocumentIn
from node.crm.parsing import parse
from node.web import uploads
from node.web.deals_pages import deal_context, deal_of
from node.web.views import Pages, View

pages = Pages()
log = get_logger("node.web.documents")

#: Room in a request for the form's other fields and the multipart framing.
FRAMING_BYTES = 64 * 1024


async def _refuse(view: View, deal_id: str, errors: dict[str, str], status: int) -> web.Response:
    return view.render("deal.html", await deal_context(view, deal_id, errors=errors), status=status)


async def _receive(view: View) -> tuple[str, str, files.StoredFile | None]:
    """Read the form: its label, and its file into the documents folder (checked)."""
    label, name, stored = "", "", None
    try:
        async for part in uploads.parts(view):
            if part.name == "label" and not part.filename:
                label = await uploads.text(view, part)
            elif part.name == "file" and part.filename and stored is None:
                upload = files.Upload(view.config.documents_dir, part.filename, limit=view.config.max_upload_bytes)
                try:
                    async for piece in uploads.pieces(view, part):
                        upload.write(piece)
                    stored = await asyncio.to_thread(upload.finish)
                finally:
                    upload.abort()  # nothing of a refused or cut-short file stays behind
                name = upload.name
    except BaseException:
        if stored is not None:
            await _forget(view, stored)
        raise
    return label, name, stored


@pages.post("/deals/{id}/documents", raw_body=True)
async def upload(view: View) -> web.StreamResponse:
    deal_id = view.request.match_info["id"]
    await view.node.db.read(lambda conn: deal_of(conn, deal_id))  # an unknown deal: 404 before reading
    limit = view.config.max_upload_bytes
    if view.request.content_length is not None and view.request.content_length > limit + FRAMING_BYTES:
        return await _refuse(view, deal_id, {"file": files.too_large(limit)}, 413)
    try:
        label, name, stored = await _receive(view)
    except CrmError as exc:
        field = exc.field if exc.field in ("label", "file") else "file"
        return await _refuse(view, deal_id, {field: exc.message}, 413 if exc.code == "too_large" else 400)
    if stored is None:
        return await _refuse(view, deal_id, {"file": "Choose a file to upload"}, 400)
    try:
        data = parse(DocumentIn, {"deal_id": deal_id, "name": name, "label": label,
                                  "size_bytes": stored.size_bytes, "sha256": stored.sha256})
        await view.node.transact(lambda conn, ctx: crm.add_document(conn, data, now=ctx.now,
                                                                    content_type=stored.content_type))
    except CrmError as exc:
        await _forget(view, stored)
        field = "label" if exc.field == "label" else "file"
        message = exc.message.split(": ", 1)[-1]
        return await _refuse(view, deal_id, {field: f"{'Label' if field == 'label' else 'The file'} {message}"}, 400)
    except BaseException:
        await _forget(view, stored)
        raise
    return view.redirect(f"/deals/{deal_id}#documents", f"{name} is uploaded.")


async def _forget(view: View, stored: files.StoredFile) -> None:
    """The document was not recorded: remove its file unless another document uses it."""
    if stored.created and not await view.node.db.read(lambda conn: crm.file_in_use(conn, stored.sha256)):
        files.discard(view.config.documents_dir, stored)


def _ascii_name(name: str) -> str:
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", name).strip() or "document"
    return fallback[:150]


@pages.get("/deals/{id}/documents/{document_id}")
async def download(view: View) -> web.StreamResponse:
    deal_id, document_id = view.request.match_info["id"], view.request.match_info["document_id"]

    def read(conn: sqlite3.Connection) -> Any:
        deal_of(conn, deal_id)
        try:
            doc = crm.get_document(conn, document_id)
        except CrmError:
            doc = None
        if doc is None or doc.deal_id != deal_id:
            raise CrmError("not_found", "This deal has no such document.")
        return doc

    return attachment(view, await view.node.db.read(read))


def attachment(view: View, doc: Any) -> web.StreamResponse:
    """A stored document's bytes as a download (the console's and the partner portal's)."""
    if not doc.stored or doc.content_type is None:
        raise CrmError("not_found", f"This node holds only the details of {doc.name}, not the file.")
    path = files.path_of(view.config.documents_dir, doc.sha256)
    if not path.is_file():
        log.error("stored document missing", document_id=doc.id)
        raise CrmError("not_found", f"The file of {doc.name} is missing from this node's documents folder.")
    disposition = (f'attachment; filename="{_ascii_name(doc.name)}"; '
                   f"filename*=UTF-8''{urllib.parse.quote(doc.name, safe='')}")
    return web.FileResponse(path, headers={
        "Content-Type": doc.content_type, "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    })
