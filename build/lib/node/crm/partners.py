"""Partners (issue 13): referrers without a node of their own, with an account on ours.

A partner is a ``users`` row with the role ``partner`` (migration 50) and a profile
(phone, dark mode). An admin adds them, assigns them to brokers, edits and removes them;
removing deactivates the account (every session ends at once) and keeps what they did.
A partner sees a deal when they created it or a broker shared it with them
(``deal_partners``); of that deal, the notes shared with them and their own, and the
documents they uploaded. :func:`node.crm.access.partner_deal` is the check.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from node.base.ids import new_id
from node.crm import accounts
from node.crm.errors import CrmError
from node.crm.fields import Email, Name, Phone
from node.crm.models import Model, Note
from node.crm.parsing import parse
from protocol.models import format_ts


class PartnerIn(Model):
    name: Name
    email: Email
    phone: Phone


@dataclass(frozen=True)
class Partner:
    id: str
    name: str
    email: str
    phone: str
    active: bool
    dark_mode: bool
    added_at: str
    brokers: tuple[tuple[str, str], ...]  # (id, name) of the active brokers assigned

    @property
    def broker_ids(self) -> set[str]:
        return {b for b, _ in self.brokers}


def _brokers(conn: sqlite3.Connection, partner_id: str) -> tuple[tuple[str, str], ...]:
    rows = conn.execute(
        """SELECT u.id, u.name FROM partner_brokers b JOIN users u ON u.id = b.broker_id
           WHERE b.partner_id = ? AND u.active = 1 AND u.role != 'partner' ORDER BY u.name COLLATE NOCASE""",
        (partner_id,))
    return tuple((r["id"], r["name"]) for r in rows)


def _partner(conn: sqlite3.Connection, row: sqlite3.Row) -> Partner:
    return Partner(row["id"], row["name"], row["email"], row["phone"], bool(row["active"]), bool(row["dark_mode"]),
                   row["added_at"], _brokers(conn, row["id"]))


_SELECT = """SELECT u.id, u.name, u.email, u.active, p.phone, p.dark_mode, p.added_at FROM users u
             JOIN partner_profiles p ON p.user_id = u.id WHERE u.role = 'partner' AND p.removed_at IS NULL"""


def get_partner(conn: sqlite3.Connection, partner_id: str) -> Partner:
    """A partner of this organisation (not a removed one), or ``not_found``."""
    row = conn.execute(_SELECT + " AND u.id = ?", (partner_id,)).fetchone()
    if row is None:
        raise CrmError("not_found", "There is no such partner here: the link may be wrong, or the partner was "
                                    "removed.")
    return _partner(conn, row)


def list_partners(conn: sqlite3.Connection) -> list[Partner]:
    rows = conn.execute(_SELECT + " ORDER BY u.name COLLATE NOCASE, u.id").fetchall()
    return [_partner(conn, r) for r in rows]


def find_partner(conn: sqlite3.Connection, email: str) -> Partner | None:
    row = conn.execute(_SELECT + " AND u.email = ?", (email.strip(),)).fetchone()
    return None if row is None else _partner(conn, row)


def _check_brokers(conn: sqlite3.Connection, broker_ids: list[str]) -> list[str]:
    for broker_id in broker_ids:
        row = conn.execute("SELECT 1 FROM users WHERE id = ? AND role != 'partner' AND active = 1",
                           (broker_id,)).fetchone()
        if row is None:
            raise CrmError("invalid", "Choose brokers of this organisation who are active.", "brokers")
    return sorted(set(broker_ids))


def create_partner(conn: sqlite3.Connection, data: PartnerIn, broker_ids: list[str], *, added_by: str | None,
                   now: datetime) -> Partner:
    """A new partner account (no password yet), assigned to ``broker_ids``. An address a
    removed partner had brings that partner back, with the new details."""
    brokers = _check_brokers(conn, broker_ids)
    row = conn.execute("SELECT u.id, u.role, p.removed_at FROM users u LEFT JOIN partner_profiles p"
                       " ON p.user_id = u.id WHERE u.email = ?", (data.email,)).fetchone()
    if row is not None and not (row["role"] == "partner" and row["removed_at"] is not None):
        what = "partner" if row["role"] == "partner" else "user of this organisation"
        raise CrmError("conflict", f"There is already a {what} with this e-mail address.", "email")
    if row is not None:
        partner_id = row["id"]
        conn.execute("UPDATE users SET name = ?, active = 1 WHERE id = ?", (data.name, partner_id))
        conn.execute("UPDATE partner_profiles SET phone = ?, removed_at = NULL, added_by = ?, added_at = ?"
                     " WHERE user_id = ?", (data.phone, added_by, format_ts(now), partner_id))
    else:
        partner_id = new_id("usr", now)
        conn.execute("INSERT INTO users (id, email, name, role, active, created_at) VALUES (?, ?, ?, 'partner', 1, ?)",
                     (partner_id, data.email, data.name, format_ts(now)))
        conn.execute("INSERT INTO partner_profiles (user_id, phone, added_by, added_at) VALUES (?, ?, ?, ?)",
                     (partner_id, data.phone, added_by, format_ts(now)))
    _assign(conn, partner_id, brokers, now)
    return get_partner(conn, partner_id)


def _assign(conn: sqlite3.Connection, partner_id: str, brokers: list[str], now: datetime) -> None:
    conn.execute("DELETE FROM partner_brokers WHERE partner_id = ?", (partner_id,))
    conn.executemany("INSERT INTO partner_brokers (partner_id, broker_id, assigned_at) VALUES (?, ?, ?)",
                     [(partner_id, b, format_ts(now)) for b in brokers])


def update_partner(conn: sqlite3.Connection, partner_id: str, *, name: str, phone: str, broker_ids: list[str],
                   now: datetime) -> Partner:
    """An admin's edit: name, phone and brokers (the e-mail address is the partner's to
    change, confirmed by a link sent to the new address)."""
    get_partner(conn, partner_id)
    data = parse(PartnerIn, {"name": name, "email": "x@example.com", "phone": phone})
    brokers = _check_brokers(conn, broker_ids)
    conn.execute("UPDATE users SET name = ? WHERE id = ?", (data.name, partner_id))
    conn.execute("UPDATE partner_profiles SET phone = ? WHERE user_id = ?", (data.phone, partner_id))
    _assign(conn, partner_id, brokers, now)
    return get_partner(conn, partner_id)


def remove_partner(conn: sqlite3.Connection, partner_id: str, now: datetime) -> Partner:
    """The partner loses access at once: the account is inactive, every session ends,
    no broker is theirs. Their deals, notes and activity stay."""
    partner = get_partner(conn, partner_id)
    conn.execute("UPDATE users SET active = 0 WHERE id = ?", (partner_id,))
    conn.execute("UPDATE partner_profiles SET removed_at = ? WHERE user_id = ?", (format_ts(now), partner_id))
    conn.execute("DELETE FROM partner_brokers WHERE partner_id = ?", (partner_id,))
    accounts.end_user_sessions(conn, partner_id, now)
    return partner


def set_profile(conn: sqlite3.Connection, partner_id: str, *, name: str, dark_mode: bool) -> None:
    """The partner's own edit of their name and look."""
    data = parse(PartnerIn, {"name": name, "email": "x@example.com", "phone": "000"})
    conn.execute("UPDATE users SET name = ? WHERE id = ?", (data.name, partner_id))
    conn.execute("UPDATE partner_profiles SET dark_mode = ? WHERE user_id = ?", (int(dark_mode), partner_id))


# --- activity --------------------------------------------------------------------------


def record(conn: sqlite3.Connection, partner_id: str, action: str, now: datetime, *, deal_id: str | None = None,
           detail: str = "") -> None:
    """One line of the partner's activity log (what they did; never a client's details)."""
    conn.execute("INSERT INTO partner_activity (id, partner_id, at, action, deal_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
                 (new_id("act", now), partner_id, format_ts(now), action, deal_id, detail[:300]))


@dataclass(frozen=True)
class Activity:
    at: str
    action: str
    deal_title: str | None
    detail: str


def activity(conn: sqlite3.Connection, partner_id: str, limit: int = 200) -> list[Activity]:
    rows = conn.execute(
        """SELECT a.at, a.action, d.title, a.detail FROM partner_activity a LEFT JOIN deals d ON d.id = a.deal_id
           WHERE a.partner_id = ? ORDER BY a.at DESC, a.id DESC LIMIT ?""", (partner_id, limit))
    return [Activity(r[0], r[1], r[2], r[3]) for r in rows]


# --- deals ----------------------------------------------------------------------------


def share_deal(conn: sqlite3.Connection, deal_id: str, partner_id: str, *, by: str | None, how: str,
               now: datetime) -> bool:
    """Give the partner access to the deal; False if they had it."""
    get_partner(conn, partner_id)
    cur = conn.execute("INSERT OR IGNORE INTO deal_partners (deal_id, partner_id, how, added_at, added_by)"
                       " VALUES (?, ?, ?, ?, ?)", (deal_id, partner_id, how, format_ts(now), by))
    return cur.rowcount == 1


def unshare_deal(conn: sqlite3.Connection, deal_id: str, partner_id: str) -> None:
    conn.execute("DELETE FROM deal_partners WHERE deal_id = ? AND partner_id = ?", (deal_id, partner_id))


def deal_partners(conn: sqlite3.Connection, deal_id: str) -> list[tuple[str, str, str]]:
    """``(id, name, how)`` of the (not removed) partners who see a deal."""
    rows = conn.execute(
        """SELECT u.id, u.name, dp.how FROM deal_partners dp JOIN users u ON u.id = dp.partner_id
           JOIN partner_profiles p ON p.user_id = u.id WHERE dp.deal_id = ? AND p.removed_at IS NULL
           ORDER BY u.name COLLATE NOCASE""", (deal_id,))
    return [(r[0], r[1], r[2]) for r in rows]


@dataclass(frozen=True)
class PortalDeal:
    id: str
    title: str
    workflow_id: str
    stage_id: str
    stage_name: str
    stage_position: int
    owner: str | None
    how: str
    updated_at: str


def portal_deals(conn: sqlite3.Connection, partner_id: str) -> list[PortalDeal]:
    """Every deal the partner sees, newest change first."""
    rows = conn.execute(
        """SELECT d.id, d.title, d.workflow_id, d.stage_id, s.name AS stage_name, s.position, u.name AS owner,
                  dp.how, d.updated_at
           FROM deal_partners dp JOIN deals d ON d.id = dp.deal_id JOIN stages s ON s.id = d.stage_id
           LEFT JOIN users u ON u.id = d.owner_user_id
           WHERE dp.partner_id = ? ORDER BY d.updated_at DESC, d.id""", (partner_id,))
    return [PortalDeal(*r) for r in rows]


def partner_notes(conn: sqlite3.Connection, deal_id: str, partner_id: str) -> list[tuple[Note, str]]:
    """The notes of a deal a partner sees: shared with partners, or their own; with the
    author's name; newest first."""
    rows = conn.execute(
        """SELECT n.*, coalesce(u.name, '') AS author FROM notes n LEFT JOIN users u ON u.id = n.author_user_id
           WHERE n.deal_id = ? AND n.kind = 'user'
             AND (n.author_user_id = ? OR n.id IN (SELECT note_id FROM note_shares))
           ORDER BY n.created_at DESC, n.id DESC LIMIT 200""", (deal_id, partner_id)).fetchall()
    return [(Note(**{k: r[k] for k in r.keys() if k != "author"}), r["author"]) for r in rows]


def share_note(conn: sqlite3.Connection, note_id: str, deal_id: str, *, shared: bool, by: str,
               now: datetime) -> bool:
    """Share a user's note on ``deal_id`` with the deal's partners, or stop; True if the
    note was shared before."""
    row = conn.execute("SELECT 1 FROM notes WHERE id = ? AND deal_id = ? AND kind = 'user'",
                       (note_id, deal_id)).fetchone()
    if row is None:
        raise CrmError("not_found", "This deal has no such note.")
    was = conn.execute("SELECT 1 FROM note_shares WHERE note_id = ?", (note_id,)).fetchone() is not None
    if shared and not was:
        conn.execute("INSERT INTO note_shares (note_id, shared_at, shared_by) VALUES (?, ?, ?)",
                     (note_id, format_ts(now), by))
    elif not shared:
        conn.execute("DELETE FROM note_shares WHERE note_id = ?", (note_id,))
    return was


def shared_note_ids(conn: sqlite3.Connection, deal_id: str) -> set[str]:
    rows = conn.execute("SELECT s.note_id FROM note_shares s JOIN notes n ON n.id = s.note_id WHERE n.deal_id = ?",
                        (deal_id,))
    return {r[0] for r in rows}


def record_document(conn: sqlite3.Connection, document_id: str, partner_id: str) -> None:
    conn.execute("INSERT INTO partner_documents (document_id, partner_id) VALUES (?, ?)", (document_id, partner_id))


def partner_document_ids(conn: sqlite3.Connection, deal_id: str, partner_id: str) -> list[str]:
    rows = conn.execute("""SELECT d.id FROM partner_documents p JOIN documents d ON d.id = p.document_id
                           WHERE d.deal_id = ? AND p.partner_id = ? ORDER BY d.created_at DESC""",
                        (deal_id, partner_id))
    return [r[0] for r in rows]


def record_consent(conn: sqlite3.Connection, deal_id: str, partner_id: str, consent: dict[str, object],
                   now: datetime) -> None:
    """The client's consent as the partner recorded it: the protocol's ``Consent``."""
    conn.execute("INSERT INTO partner_consents (deal_id, partner_id, record, created_at) VALUES (?, ?, ?, ?)",
                 (deal_id, partner_id, json.dumps(consent, sort_keys=True), format_ts(now)))


def consent_of(conn: sqlite3.Connection, deal_id: str) -> dict[str, object] | None:
    row = conn.execute("SELECT record FROM partner_consents WHERE deal_id = ?", (deal_id,)).fetchone()
    return None if row is None else dict(json.loads(row[0]))
