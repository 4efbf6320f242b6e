"""The query strings the CRM routes take, as models, and the deal search that
``GET /deals`` and the deals CSV export share.

Lists take ``limit`` (1 to 1000, default 100) and ``offset``. Handlers read a query
string with ``node.http.api.query_model``, which refuses an unknown or repeated
parameter by name.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from node.crm import store as crm
from node.crm.errors import CrmError
from node.crm.models import Deal, Id, Model, Origin, ShortText
from node.http.api import whole_number

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

Limit = whole_number(1, MAX_LIMIT)
Offset = whole_number(0)


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


def find_deals(conn: sqlite3.Connection, query: DealFilter, **page: Any) -> list[Deal]:
    """``list_deals`` with the query's filters (and ``page``: limit, after, custom_only);
    a stage outside the workflow asked for is refused rather than answered with nothing."""
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
    return crm.list_deals(conn, **query.model_dump(), **page)
