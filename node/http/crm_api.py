"""Admin-API routes of the local CRM: users (changes), workflows and their stages, deals,
contacts, notes, document metadata, and CSV export and import.

Handlers are thin: parse (JSON bodies through ``Route(body=...)``, query parameters through
a model here), call ``node.crm.store`` in one transaction, answer with the models as JSON.
Errors from the store (``CrmError``) become 404 (an id this node does not hold), 400
(input that breaks a rule) or 409 (a clash with what is stored), naming the field.

Rules of the API beyond the store's:
- Workflows and stages, user changes, and CSV export and import are for admins.
- Lists take ``limit`` (1 to 1000, default 100) and ``offset``; an unknown or repeated
  query parameter is refused by name.
- A deal changes stage only with ``POST /deals/{id}/move``, which runs the
  ``node.crm.events.on_deal_moved`` hooks in the same transaction.
- CSV import is all or nothing: a 400 lists every problem as ``error.detail.errors``
  ``[{row, field, message}]`` (the header is row 1) and nothing is written.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import (
    BaseModel,
    Field,
    StrictBool,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from node.base.errors import ApiError
from node.crm import csv_io, events, users
from node.crm import store as crm
from node.crm.errors import CrmError, CsvImportError
from node.crm.fields import Id, Name, Origin, Role, Sha256, ShortText
from node.crm.models import (
    ContactIn,
    ContactPatch,
    Deal,
    DealContact,
    DealIn,
    DealPatch,
    DocumentIn,
    Model,
    NoteIn,
    StageIn,
    WorkflowIn,
    WorkflowPatch,
)
from node.crm.parsing import field_errors, parse
from node.federation.outbox import TxContext
from node.federation.runtime import Node
from node.http.admin_api import Caller, Route

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

# --- input models that only the API needs -------------------------------------------------


class UserPatch(Model):
    """Only the fields given change."""

    name: Name | None = None
    role: Role | None = None
    #: false deactivates the user: their tokens stop working; their records stay.
    active: StrictBool | None = None


class StageRename(Model):
    name: Name


class StageOrder(Model):
    #: Every stage of the workflow, each once, in the new order.
    stage_ids: Annotated[list[Id], Field(min_length=1, max_length=50)]


class DealMove(Model):
    stage_id: Id
    #: To move the deal to a stage of another workflow; default: the deal's own workflow.
    workflow_id: Id | None = None


class DealPatchIn(DealPatch):
    """Only the fields given change; the stage changes with ``POST /deals/{id}/move``."""

    stage_id: SkipJsonSchema[Any] = Field(default=None, exclude=True)
    workflow_id: SkipJsonSchema[Any] = Field(default=None, exclude=True)

    @field_validator("stage_id", "workflow_id")
    @classmethod
    def _moved_elsewhere(cls, value: Any) -> Any:
        raise ValueError("cannot be patched; move the deal with POST /api/v1/deals/{id}/move")


NoteText = Annotated[str, StringConstraints(min_length=1, max_length=8000)]


class ContactNoteIn(Model):
    body: NoteText


class DealNoteIn(Model):
    body: NoteText
    #: A note about one contact of the deal: it shows on the deal and on the contact.
    contact_id: Id | None = None


class DealDocumentIn(Model):
    """Metadata of a file kept with the deal; the bytes live elsewhere."""

    name: Name
    label: ShortText = ""
    size_bytes: Annotated[int, Field(ge=0, strict=True)]
    sha256: Sha256


# --- query parameters ----------------------------------------------------------------------

Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT)]
Offset = Annotated[int, Field(ge=0)]


class NoQuery(Model):
    pass


class DealFilter(Model):
    workflow_id: Id | None = None
    stage_id: Id | None = None
    owner_user_id: Id | None = None
    contact_id: Id | None = None
    folder: ShortText | None = None
    label: ShortText | None = None
    origin: Origin | None = None
    q: ShortText | None = None


class DealQuery(DealFilter):
    limit: Limit = DEFAULT_LIMIT
    offset: Offset = 0


class ContactFilter(Model):
    q: ShortText | None = None


class ContactQuery(ContactFilter):
    limit: Limit = DEFAULT_LIMIT
    offset: Offset = 0


class DocumentQuery(Model):
    label: ShortText | None = None


Q = TypeVar("Q", bound=BaseModel)


def _query(request: web.Request, model: type[Q]) -> Q:
    """The query string as ``model``, or a 400 naming the parameter to fix."""
    for name in request.query:
        if len(request.query.getall(name)) > 1:
            raise ApiError(
                400,
                "invalid",
                f"query parameter {name} is given more than once; give it once",
                field=name,
            )
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "(query)"
        if first["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields)
            takes = f"this route takes: {known}" if known else "this route takes none"
            message = f"unknown query parameter {name!r}; {takes}"
        else:
            message = f"query parameter {name}: {field_errors(exc)[0][1]}"
        raise ApiError(
            400,
            "invalid",
            message,
            field=name,
            errors=[{"field": f, "message": m} for f, m in field_errors(exc)],
        ) from None


# --- answers -------------------------------------------------------------------------------


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def _dumps(models: list[Any]) -> list[dict[str, Any]]:
    return [_dump(m) for m in models]


def _csv(text: str, filename: str) -> web.Response:
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# --- users ---------------------------------------------------------------------------------


async def update_user(request: web.Request, node: Node, caller: Caller, body: UserPatch) -> Any:
    user_id = request.match_info["id"]
    changes = body.model_dump(exclude_unset=True)
    user = await node.transact(lambda conn, ctx: users.update_user(conn, user_id, **changes))
    return {"user": _dump(user)}


# --- workflows and stages ------------------------------------------------------------------


async def create_workflow(
    request: web.Request, node: Node, caller: Caller, body: WorkflowIn
) -> Any:
    workflow = await node.transact(lambda conn, ctx: crm.create_workflow(conn, body, now=ctx.now))
    return {"workflow": _dump(workflow)}


async def list_workflows(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    _query(request, NoQuery)
    return {"workflows": _dumps(await node.db.read(crm.list_workflows))}


async def get_workflow(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    _query(request, NoQuery)
    workflow_id = request.match_info["id"]
    return {"workflow": _dump(await node.db.read(lambda conn: crm.get_workflow(conn, workflow_id)))}


async def update_workflow(
    request: web.Request, node: Node, caller: Caller, body: WorkflowPatch
) -> Any:
    workflow_id = request.match_info["id"]
    workflow = await node.transact(lambda conn, ctx: crm.update_workflow(conn, workflow_id, body))
    return {"workflow": _dump(workflow)}


async def add_stage(request: web.Request, node: Node, caller: Caller, body: StageIn) -> Any:
    workflow_id = request.match_info["id"]
    workflow = await node.transact(
        lambda conn, ctx: crm.add_stage(
            conn, workflow_id, body.name, position=body.position, now=ctx.now
        )
    )
    return {"workflow": _dump(workflow)}


async def rename_stage(request: web.Request, node: Node, caller: Caller, body: StageRename) -> Any:
    stage_id = request.match_info["id"]
    workflow = await node.transact(lambda conn, ctx: crm.rename_stage(conn, stage_id, body.name))
    return {"workflow": _dump(workflow)}


async def reorder_stages(request: web.Request, node: Node, caller: Caller, body: StageOrder) -> Any:
    workflow_id = request.match_info["id"]
    workflow = await node.transact(
        lambda conn, ctx: crm.reorder_stages(conn, workflow_id, body.stage_ids)
    )
    return {"workflow": _dump(workflow)}


async def delete_stage(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    stage_id = request.match_info["id"]
    workflow = await node.transact(lambda conn, ctx: crm.delete_stage(conn, stage_id))
    return {"workflow": _dump(workflow)}


# --- deals ---------------------------------------------------------------------------------


def _find_deals(conn: sqlite3.Connection, query: DealFilter) -> list[Deal]:
    """``list_deals`` with the query's filters; a stage outside the workflow asked for is
    refused rather than answered with nothing."""
    if query.workflow_id is not None and query.stage_id is not None:
        workflow = crm.get_workflow(conn, query.workflow_id, field="workflow_id")
        stage = crm.get_stage(conn, query.stage_id, field="stage_id")
        if stage.workflow_id != workflow.id:
            raise CrmError(
                "invalid",
                f"stage {stage.id!r} ({stage.name!r}) is not in workflow {workflow.name!r}; "
                "give a stage of that workflow or leave out workflow_id",
                "stage_id",
            )
    return crm.list_deals(conn, **query.model_dump())


async def create_deal(request: web.Request, node: Node, caller: Caller, body: DealIn) -> Any:
    deal = await node.transact(lambda conn, ctx: crm.create_deal(conn, body, now=ctx.now))
    return {"deal": _dump(deal)}


async def list_deals(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    query = _query(request, DealQuery)
    deals = await node.db.read(lambda conn: _find_deals(conn, query))
    return {"deals": _dumps(deals), "limit": query.limit, "offset": query.offset}


async def get_deal(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    _query(request, NoQuery)
    deal_id = request.match_info["id"]
    return {"deal": _dump(await node.db.read(lambda conn: crm.get_deal(conn, deal_id)))}


async def update_deal(request: web.Request, node: Node, caller: Caller, body: DealPatchIn) -> Any:
    deal_id = request.match_info["id"]
    deal = await node.transact(lambda conn, ctx: crm.update_deal(conn, deal_id, body, now=ctx.now))
    return {"deal": _dump(deal)}


async def move_deal(request: web.Request, node: Node, caller: Caller, body: DealMove) -> Any:
    deal_id = request.match_info["id"]

    def move(conn: sqlite3.Connection, ctx: TxContext) -> Deal:
        before = crm.get_deal(conn, deal_id)
        after = crm.move_deal(
            conn, deal_id, body.stage_id, now=ctx.now, workflow_id=body.workflow_id
        )
        events.fire_deal_moved(conn, ctx, before, after, node.on_deal_moved)
        return crm.get_deal(conn, deal_id)  # as the hooks left it

    return {"deal": _dump(await node.transact(move))}


async def attach_contact(
    request: web.Request, node: Node, caller: Caller, body: DealContact
) -> Any:
    deal_id = request.match_info["id"]
    deal = await node.transact(
        lambda conn, ctx: crm.attach_contact(
            conn, deal_id, body.contact_id, role=body.role, now=ctx.now
        )
    )
    return {"deal": _dump(deal)}


async def detach_contact(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    deal_id, contact_id = request.match_info["id"], request.match_info["contact_id"]
    deal = await node.transact(
        lambda conn, ctx: crm.detach_contact(conn, deal_id, contact_id, now=ctx.now)
    )
    return {"deal": _dump(deal)}


async def list_deal_notes(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    _query(request, NoQuery)
    deal_id = request.match_info["id"]
    return {"notes": _dumps(await node.db.read(lambda conn: crm.list_notes(conn, deal_id=deal_id)))}


async def add_deal_note(request: web.Request, node: Node, caller: Caller, body: DealNoteIn) -> Any:
    deal_id = request.match_info["id"]

    def add(conn: sqlite3.Connection, ctx: TxContext) -> Any:
        deal = crm.get_deal(conn, deal_id)  # an unknown id is a 404 whatever it looks like
        if body.contact_id is not None and all(
            c.contact_id != body.contact_id for c in deal.contacts
        ):
            crm.get_contact(conn, body.contact_id, field="contact_id")
            raise CrmError(
                "invalid",
                f"contact {body.contact_id!r} is not on deal {deal_id!r}; add them "
                "with POST /api/v1/deals/{id}/contacts first",
                "contact_id",
            )
        data = parse(NoteIn, {"deal_id": deal_id, "contact_id": body.contact_id, "body": body.body})
        return crm.add_note(conn, data, now=ctx.now, author_user_id=caller.id)

    return {"note": _dump(await node.transact(add))}


async def list_documents(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    query = _query(request, DocumentQuery)
    deal_id = request.match_info["id"]
    documents = await node.db.read(
        lambda conn: crm.list_documents(conn, deal_id, label=query.label)
    )
    return {"documents": _dumps(documents)}


async def add_document(
    request: web.Request, node: Node, caller: Caller, body: DealDocumentIn
) -> Any:
    deal_id = request.match_info["id"]

    def add(conn: sqlite3.Connection, ctx: TxContext) -> Any:
        crm.get_deal(conn, deal_id)
        return crm.add_document(
            conn, parse(DocumentIn, {"deal_id": deal_id, **body.model_dump()}), now=ctx.now
        )

    return {"document": _dump(await node.transact(add))}


# --- contacts ------------------------------------------------------------------------------


async def create_contact(request: web.Request, node: Node, caller: Caller, body: ContactIn) -> Any:
    contact = await node.transact(lambda conn, ctx: crm.create_contact(conn, body, now=ctx.now))
    return {"contact": _dump(contact)}


async def list_contacts(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    query = _query(request, ContactQuery)
    contacts = await node.db.read(lambda conn: crm.list_contacts(conn, **query.model_dump()))
    return {"contacts": _dumps(contacts), "limit": query.limit, "offset": query.offset}


async def get_contact(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    _query(request, NoQuery)
    contact_id = request.match_info["id"]
    return {"contact": _dump(await node.db.read(lambda conn: crm.get_contact(conn, contact_id)))}


async def update_contact(
    request: web.Request, node: Node, caller: Caller, body: ContactPatch
) -> Any:
    contact_id = request.match_info["id"]
    contact = await node.transact(
        lambda conn, ctx: crm.update_contact(conn, contact_id, body, now=ctx.now)
    )
    return {"contact": _dump(contact)}


async def list_contact_notes(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    _query(request, NoQuery)
    contact_id = request.match_info["id"]
    return {
        "notes": _dumps(
            await node.db.read(lambda conn: crm.list_notes(conn, contact_id=contact_id))
        )
    }


async def add_contact_note(
    request: web.Request, node: Node, caller: Caller, body: ContactNoteIn
) -> Any:
    contact_id = request.match_info["id"]

    def add(conn: sqlite3.Connection, ctx: TxContext) -> Any:
        crm.get_contact(conn, contact_id)
        data = parse(NoteIn, {"contact_id": contact_id, "body": body.body})
        return crm.add_note(conn, data, now=ctx.now, author_user_id=caller.id)

    return {"note": _dump(await node.transact(add))}


# --- CSV -----------------------------------------------------------------------------------


async def export_deals(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    query = _query(request, DealFilter)
    text = await node.db.read(lambda conn: csv_io.export_deals_csv(conn, _find_deals(conn, query)))
    return _csv(text, f"deals-{node.clock.now():%Y-%m-%d}.csv")


async def export_contacts(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    query = _query(request, ContactFilter)
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
    return {"imported": len(deals), "deals": _dumps(deals)}


async def import_contacts(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    text = await _csv_body(request)
    try:
        contacts = await node.transact(
            lambda conn, ctx: csv_io.import_contacts_csv(conn, text, now=ctx.now)
        )
    except CsvImportError as exc:
        raise _refused(exc) from None
    return {"imported": len(contacts), "contacts": _dumps(contacts)}


# --- routes --------------------------------------------------------------------------------

# fmt: off
ROUTES: list[Route] = [
    Route("PATCH", "/api/v1/users/{id}", update_user,
          "Change a user's name or role, or deactivate them (active: false; their tokens stop working)",
          UserPatch, admin_only=True),
    # workflows and stages
    Route("POST", "/api/v1/workflows", create_workflow, "Create a workflow with its stages in order",
          WorkflowIn, admin_only=True, status=201),
    Route("GET", "/api/v1/workflows", list_workflows, "List workflows with their stages"),
    Route("GET", "/api/v1/workflows/{id}", get_workflow, "One workflow with its stages"),
    Route("PATCH", "/api/v1/workflows/{id}", update_workflow, "Rename a workflow or change its owner",
          WorkflowPatch, admin_only=True),
    Route("POST", "/api/v1/workflows/{id}/stages", add_stage,
          "Add a stage at position (0 = first; default last)", StageIn, admin_only=True, status=201),
    Route("POST", "/api/v1/workflows/{id}/stages/order", reorder_stages,
          "Reorder the stages: stage_ids lists every stage once", StageOrder, admin_only=True),
    Route("PATCH", "/api/v1/stages/{id}", rename_stage, "Rename a stage", StageRename, admin_only=True),
    Route("DELETE", "/api/v1/stages/{id}", delete_stage, "Delete an empty stage (a workflow keeps one)",
          admin_only=True),
    # deals
    Route("POST", "/api/v1/deals", create_deal, "Create a deal in a stage of a workflow", DealIn,
          status=201),
    Route("GET", "/api/v1/deals", list_deals,
          "List deals, oldest first: ?workflow_id, stage_id, owner_user_id, contact_id, folder, label,"
          " origin, q (title, summary, source, contacts' names and emails), limit (default 100), offset"),
    Route("GET", "/api/v1/deals/{id}", get_deal, "One deal"),
    Route("PATCH", "/api/v1/deals/{id}", update_deal,
          "Change a deal's fields (null clears; labels, custom_fields and contacts are replaced whole)",
          DealPatchIn),
    Route("POST", "/api/v1/deals/{id}/move", move_deal,
          "Move a deal to a stage (of another workflow with workflow_id); runs the deal-moved hooks",
          DealMove),
    Route("POST", "/api/v1/deals/{id}/contacts", attach_contact,
          "Add a contact to a deal, or change their role on it", DealContact),
    Route("DELETE", "/api/v1/deals/{id}/contacts/{contact_id}", detach_contact,
          "Take a contact off a deal"),
    Route("GET", "/api/v1/deals/{id}/notes", list_deal_notes, "A deal's notes, oldest first"),
    Route("POST", "/api/v1/deals/{id}/notes", add_deal_note,
          "Add a note to a deal (with contact_id: about one of its contacts)", DealNoteIn, status=201),
    Route("GET", "/api/v1/deals/{id}/documents", list_documents, "A deal's documents (?label=)"),
    Route("POST", "/api/v1/deals/{id}/documents", add_document,
          "Record a document's metadata on a deal (name, label, size_bytes, sha256)", DealDocumentIn,
          status=201),
    # contacts
    Route("POST", "/api/v1/contacts", create_contact, "Create a contact", ContactIn, status=201),
    Route("GET", "/api/v1/contacts", list_contacts,
          "List contacts, oldest first: ?q (names, email, phone), limit (default 100), offset"),
    Route("GET", "/api/v1/contacts/{id}", get_contact, "One contact"),
    Route("PATCH", "/api/v1/contacts/{id}", update_contact,
          "Change a contact's fields (null clears; address and custom_fields are replaced whole)",
          ContactPatch),
    Route("GET", "/api/v1/contacts/{id}/notes", list_contact_notes,
          "A contact's notes (their deals' notes about them included), oldest first"),
    Route("POST", "/api/v1/contacts/{id}/notes", add_contact_note, "Add a note to a contact",
          ContactNoteIn, status=201),
    # CSV
    Route("GET", "/api/v1/export/deals.csv", export_deals,
          "Deals as CSV (text/csv), filtered as GET /deals; workflow and stage by name, owner by email",
          admin_only=True),
    Route("GET", "/api/v1/export/contacts.csv", export_contacts, "Contacts as CSV (text/csv); ?q",
          admin_only=True),
    Route("POST", "/api/v1/import/deals", import_deals,
          "Import deals from a CSV body (text/csv), all or nothing; import their contacts first",
          admin_only=True, status=201),
    Route("POST", "/api/v1/import/contacts", import_contacts,
          "Import contacts from a CSV body (text/csv), all or nothing", admin_only=True, status=201),
]
# fmt: on
