"""Documents on a deal: their metadata (name, label, size, SHA-256, and for a file this
node holds, its checked content type) recorded, read and listed. The bytes are kept by
``node.crm.document_files``, by SHA-256; :func:`file_in_use` says whether any document
still names a stored file.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from node.base.ids import new_id
from node.crm.models import Document, DocumentIn
from node.crm.store.deals import get_deal
from node.crm.store.sql import _missing, _ts


def add_document(conn: sqlite3.Connection, data: DocumentIn, *, now: datetime,
                 content_type: str | None = None) -> Document:
    """Record a document on a deal: metadata only, or (``content_type`` given) a file
    whose bytes this node stores."""
    get_deal(conn, data.deal_id, field="deal_id")
    doc = Document(id=new_id("doc", now), **data.model_dump(), created_at=_ts(now),
                   content_type=content_type, stored=content_type is not None)
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


def file_in_use(conn: sqlite3.Connection, sha256: str) -> bool:
    """Whether a document names the stored file of this SHA-256."""
    row = conn.execute("SELECT 1 FROM documents WHERE sha256 = ? AND stored = 1 LIMIT 1", (sha256,))
    return row.fetchone() is not None
