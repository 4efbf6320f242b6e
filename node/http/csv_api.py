"""Admin-API routes for CSV files of the CRM: deals and contacts exported (filtered as
their lists are) and imported. All are for admins.

An import is all or nothing: a 400 lists every problem as ``error.detail.errors``
``[{row, field, message}]`` (the header is row 1) and nothing is written.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.base.errors import ApiError
from node.crm import csv_io
from node.crm import store as crm
from node.crm.errors import CsvImportError
from node.federation.runtime import Node
from node.http.api import Caller, Route, query_model
from node.http.crm_queries import ContactFilter, DealFilter, find_deals
from node.http.json_answers import models_json


def _csv(text: str, filename: str) -> web.Response:
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def export_deals(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    query = query_model(request, DealFilter)
    text = await node.db.read(lambda conn: csv_io.export_deals_csv(conn, find_deals(conn, query)))
    return _csv(text, f"deals-{node.clock.now():%Y-%m-%d}.csv")


async def export_contacts(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    query = query_model(request, ContactFilter)
    text = await node.db.read(
        lambda conn: csv_io.export_contacts_csv(conn, crm.list_contacts(conn, q=query.q))
    )
    return _csv(text, f"contacts-{node.clock.now():%Y-%m-%d}.csv")


async def _csv_body(request: web.Request) -> str:
    if request.content_type != "text/csv":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the CSV file as the request body with Content-Type: text/csv "
            f"(not {request.content_type})",
        )
    raw = await request.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400,
            "invalid",
            f"the file is not UTF-8 text (byte {exc.start}); save it as CSV UTF-8",
            field="(body)",
        ) from None


def _refused(exc: CsvImportError) -> ApiError:
    return ApiError(
        400,
        "invalid",
        f"nothing was imported: {exc.message}",
        field=exc.field,
        errors=[e._asdict() for e in exc.errors],
    )


async def import_deals(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    text = await _csv_body(request)
    try:
        deals = await node.transact(
            lambda conn, ctx: csv_io.import_deals_csv(conn, text, now=ctx.now)
        )
    except CsvImportError as exc:
        raise _refused(exc) from None
    return {"imported": len(deals), "deals": models_json(deals)}


async def import_contacts(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    text = await _csv_body(request)
    try:
        contacts = await node.transact(
            lambda conn, ctx: csv_io.import_contacts_csv(conn, text, now=ctx.now)
        )
    except CsvImportError as exc:
        raise _refused(exc) from None
    return {"imported": len(contacts), "contacts": models_json(contacts)}


# fmt: off
ROUTES: list[Route] = [
    Route("GET", "/api/v1/export/deals.csv", export_deals,
          "Deals as CSV (text/csv), filtered as GET /deals; workflow and stage by name, owner by email",
          admin_only=True, query=DealFilter, answers="text/csv"),
    Route("GET", "/api/v1/export/contacts.csv", export_contacts, "Contacts as CSV (text/csv); ?q",
          admin_only=True, query=ContactFilter, answers="text/csv"),
    Route("POST", "/api/v1/import/deals", import_deals,
          "Import deals from a CSV body (text/csv), all or nothing; import their contacts first",
          admin_only=True, status=201, csv_body=True),
    Route("POST", "/api/v1/import/contacts", import_contacts,
          "Import contacts from a CSV body (text/csv), all or nothing", admin_only=True, status=201,
          csv_body=True),
]
# fmt: on
