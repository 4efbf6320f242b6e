"""Document metadata on a deal (name, label, size, SHA-256): recorded, read and listed.
The bytes themselves are not kept here.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from node.base.ids import new_id
from node.crm.models import Document, DocumentIn
from node.crm.store.deals import get_deal
from node.crm.store.sql import _missing, _ts


def add_document(conn: sqlite3.Connection, data: DocumentIn, *, now: datetime) -> Document:
    """Record a document's metadata on a deal."""
    get_deal(conn, data.deal_id, field="deal_id")
    doc = Document(id=new_id("doc", now), **data.model_dump(), created_at=_ts(now))
    row = doc.model_dump()
    conn.execute(
        f"INSERT INTO documents ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
        list(row.values()),
    )
    return doc


def get_document(conn: sqlite3.Connection, document_id: str) -> Document:
    row = conn.execute("SELECT * FROM documents WHERE id = ?", (document_id,)).fetchone()
    if row is None:
        raise _missing("document", document_id)
    return Document(**dict(row))


def list_documents(
    conn: sqlite3.Connection, deal_id: str, *, label: str | None = None
) -> list[Document]:
    get_deal(conn, deal_id, field="deal_id")
    sql, params = "SELECT * FROM documents WHERE deal_id = ?", [deal_id]
    if label is not None:
        sql += " AND label = ? COLLATE NOCASE"
        params.append(label)
    rows = conn.execute(sql + " ORDER BY created_at, id", params)
    return [Document(**dict(r)) for r in rows]
