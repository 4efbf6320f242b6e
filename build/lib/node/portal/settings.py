"""What each broker sets for their own portal, what the organisation sets, and flows.

- **Portal settings** (per broker, table ``client_portal_settings``): the deal status bar, the
  fact find first, the privacy disclosure (compulsory: a portal is not shared until it is
  set) and, per notification event, e-mail, SMS, both or off;
- **videos**: a YouTube or Vimeo link with a short description, for a workflow stage (the
  dashboard) or a flow's section. Only those hosts are taken, and a page embeds only the
  providers' privacy-enhanced players (``youtube-nocookie.com``, ``player.vimeo.com``
  with ``dnt=1``), which the client pages' CSP ``frame-src`` names and nothing else;
- **the organisation** (table ``portal_org``): its compliance jurisdiction, a row set of
  ``compliance_labels``; and its SMS credits;
- **flows**: a broker's fact-find flows (loan type, name, sections and subsections).
"""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from node.base.ids import new_id
from node.crm.errors import CrmError
from node.portal.catalogue import CURRENT_VERSION, catalogue
from protocol.models import format_ts

#: Events that may reach a client, in the order the settings page lists them.
EVENTS: dict[str, str] = {
    "invitation": "Invitation (with the sign-in passcode)",
    "document_requested": "A document is requested",
    "stage_change": "The application moves to another stage",
    "message": "A message from you",
}
CHANNELS: dict[str, str] = {"email": "E-mail", "sms": "SMS", "both": "E-mail and SMS", "off": "Off"}
DEFAULT_NOTIFY = {"invitation": "both", "document_requested": "email", "stage_change": "email", "message": "email"}
MAX_DISCLOSURE = 8000
FRAME_SOURCES = ("https://www.youtube-nocookie.com", "https://player.vimeo.com")

_YOUTUBE_HOSTS = {"youtube.com", "www.youtube.com", "m.youtube.com", "youtu.be", "www.youtube-nocookie.com"}
_VIMEO_HOSTS = {"vimeo.com", "www.vimeo.com", "player.vimeo.com"}
_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_VIMEO_ID = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class PortalSettings:
    user_id: str
    show_status_bar: bool
    fact_find_first: bool
    privacy_disclosure: str
    notify: dict[str, str]


def get_settings(conn: sqlite3.Connection, user_id: str) -> PortalSettings:
    row = conn.execute("SELECT * FROM client_portal_settings WHERE user_id = ?", (user_id,)).fetchone()
    if row is None:
        return PortalSettings(user_id, True, True, "", dict(DEFAULT_NOTIFY))
    notify = {**DEFAULT_NOTIFY, **json.loads(row["notify"])}
    return PortalSettings(user_id, bool(row["show_status_bar"]), bool(row["fact_find_first"]),
                          row["privacy_disclosure"], notify)


def save_settings(conn: sqlite3.Connection, settings: PortalSettings, now: datetime) -> None:
    if len(settings.privacy_disclosure) > MAX_DISCLOSURE:
        raise CrmError("invalid", f"The privacy disclosure must be {MAX_DISCLOSURE:,} characters or fewer",
                       "privacy_disclosure")
    for event, channel in settings.notify.items():
        if event not in EVENTS or channel not in CHANNELS or (event == "invitation" and channel == "off"):
            raise CrmError("invalid", f"Choose how the client hears of: {EVENTS.get(event, 'that')}",
                           f"notify_{event}" if event in EVENTS else "notify")
    conn.execute(
        """INSERT INTO client_portal_settings (user_id, show_status_bar, fact_find_first, privacy_disclosure, notify,
                                        updated_at) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (user_id) DO UPDATE SET show_status_bar = excluded.show_status_bar,
             fact_find_first = excluded.fact_find_first, privacy_disclosure = excluded.privacy_disclosure,
             notify = excluded.notify, updated_at = excluded.updated_at""",
        (settings.user_id, int(settings.show_status_bar), int(settings.fact_find_first),
         settings.privacy_disclosure, json.dumps(settings.notify, sort_keys=True), format_ts(now)))


# --- videos ------------------------------------------------------------------------------


def embed_url(url: str) -> str:
    """The privacy-enhanced player's address for a YouTube or Vimeo link; ``CrmError``
    (field ``url``) for any other link."""
    refuse = CrmError("invalid", "Enter a YouTube or Vimeo link, like https://www.youtube.com/watch?v=... "
                                 "or https://vimeo.com/123456", "url")
    try:
        parts = urllib.parse.urlsplit(url.strip())
    except ValueError:
        raise refuse from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or parts.username or parts.password or parts.port not in (None, 443, 80):
        raise refuse
    path = [p for p in parts.path.split("/") if p]
    if host in _YOUTUBE_HOSTS:
        if host == "youtu.be":
            video = path[0] if len(path) == 1 else ""
        elif path[:1] in (["embed"], ["shorts"], ["live"]) and len(path) == 2:
            video = path[1]
        elif path == ["watch"]:
            video = urllib.parse.parse_qs(parts.query).get("v", [""])[0]
        else:
            video = ""
        if not _YOUTUBE_ID.match(video):
            raise refuse
        return f"https://www.youtube-nocookie.com/embed/{video}"
    if host in _VIMEO_HOSTS:
        video = path[-1] if path and (host != "player.vimeo.com" or path[:1] == ["video"]) else ""
        if not _VIMEO_ID.match(video):
            raise refuse
        return f"https://player.vimeo.com/video/{video}?dnt=1"
    raise refuse


def set_video(conn: sqlite3.Connection, owner_user_id: str, *, url: str, description: str,
              stage_id: str | None = None, flow_id: str | None = None, section: str | None = None) -> None:
    """Set (or, with an empty ``url``, remove) the video of a stage or of a flow's section."""
    if len(description) > 300:
        raise CrmError("invalid", "The description must be 300 characters or fewer", "description")
    if stage_id is not None:
        conn.execute("DELETE FROM portal_videos WHERE owner_user_id = ? AND stage_id = ?", (owner_user_id, stage_id))
    else:
        conn.execute("DELETE FROM portal_videos WHERE owner_user_id = ? AND flow_id = ? AND section = ?",
                     (owner_user_id, flow_id, section))
    if not url.strip():
        return
    embed_url(url)
    conn.execute("INSERT INTO portal_videos (id, owner_user_id, stage_id, flow_id, section, url, description)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (new_id("video"), owner_user_id, stage_id, flow_id, section, url.strip(), description.strip()))


def videos(conn: sqlite3.Connection, owner_user_id: str) -> dict[str, dict[str, str]]:
    """A broker's videos, keyed ``stage:<id>`` or ``flow:<id>:<section>``."""
    out = {}
    for r in conn.execute("SELECT * FROM portal_videos WHERE owner_user_id = ?", (owner_user_id,)):
        key = f"stage:{r['stage_id']}" if r["stage_id"] else f"flow:{r['flow_id']}:{r['section']}"
        out[key] = {"url": r["url"], "description": r["description"], "embed": embed_url(r["url"])}
    return out


# --- the organisation ---------------------------------------------------------------------


def jurisdictions(conn: sqlite3.Connection) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in conn.execute("SELECT jurisdiction, label FROM compliance_labels ORDER BY jurisdiction, position"):
        out.setdefault(r["jurisdiction"], []).append(r["label"])
    return out


def org(conn: sqlite3.Connection) -> dict[str, Any]:
    row = conn.execute("SELECT jurisdiction, sms_credits FROM portal_org WHERE id = 1").fetchone()
    return {"jurisdiction": row["jurisdiction"], "sms_credits": row["sms_credits"]}


def required_labels(conn: sqlite3.Connection) -> list[str]:
    """The labels of the documents a deal must hold before its portal is shared."""
    return jurisdictions(conn).get(org(conn)["jurisdiction"], [])


def set_jurisdiction(conn: sqlite3.Connection, jurisdiction: str) -> None:
    if jurisdiction not in jurisdictions(conn):
        raise CrmError("invalid", "Choose a jurisdiction from the list", "jurisdiction")
    conn.execute("UPDATE portal_org SET jurisdiction = ? WHERE id = 1", (jurisdiction,))


def top_up_credits(conn: sqlite3.Connection, credits: int) -> int:
    if not 1 <= credits <= 100_000:
        raise CrmError("invalid", "Enter a number of credits from 1 to 100,000", "credits")
    conn.execute("UPDATE portal_org SET sms_credits = sms_credits + ? WHERE id = 1", (credits,))
    return int(org(conn)["sms_credits"])


def use_credit(conn: sqlite3.Connection) -> bool:
    """Take one SMS credit; False when none is left."""
    return conn.execute("UPDATE portal_org SET sms_credits = sms_credits - 1 WHERE id = 1 AND sms_credits > 0"
                        ).rowcount == 1


# --- flows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flow:
    id: str
    owner_user_id: str
    loan_type: str
    name: str
    catalogue_version: int
    sections: dict[str, list[str]]

    def chosen(self) -> list[Any]:
        """The catalogue's sections this flow includes, in the catalogue's order."""
        book = catalogue(self.catalogue_version)
        return [s for s in book.sections if s.key in self.sections]


def _flow(row: sqlite3.Row) -> Flow:
    return Flow(row["id"], row["owner_user_id"], row["loan_type"], row["name"], row["catalogue_version"],
                json.loads(row["sections"]))


def check_flow(loan_type: str, name: str, sections: dict[str, list[str]]) -> dict[str, str]:
    errors = {}
    book = catalogue(CURRENT_VERSION)
    if loan_type not in book.loan_types:
        errors["loan_type"] = "Choose the loan type"
    if not name or len(name) > 100:
        errors["name"] = "Enter a name of 100 characters or fewer" if name else "Enter the flow's name"
    if not any(sections.values()):
        errors["sections"] = "Choose at least one section of the fact find"
    for key, subs in sections.items():
        section = book.section(key)
        if section is None or any(section.subsection(s) is None for s in subs):
            errors["sections"] = "Choose sections from the list"
    return errors


def save_flow(conn: sqlite3.Connection, owner_user_id: str, *, loan_type: str, name: str,
              sections: dict[str, list[str]], now: datetime, flow_id: str | None = None) -> str:
    errors = check_flow(loan_type, name, sections)
    if errors:
        field, message = next(iter(errors.items()))
        raise CrmError("invalid", message, field)
    chosen = json.dumps({k: v for k, v in sections.items() if v})
    if flow_id is None:
        flow_id = new_id("flow", now)
        conn.execute("INSERT INTO portal_flows (id, owner_user_id, loan_type, name, catalogue_version, sections,"
                     " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (flow_id, owner_user_id, loan_type, name, CURRENT_VERSION, chosen, format_ts(now), format_ts(now)))
    else:
        get_flow(conn, flow_id, owner_user_id)
        conn.execute("UPDATE portal_flows SET loan_type = ?, name = ?, catalogue_version = ?, sections = ?,"
                     " updated_at = ? WHERE id = ?",
                     (loan_type, name, CURRENT_VERSION, chosen, format_ts(now), flow_id))
    return flow_id


def get_flow(conn: sqlite3.Connection, flow_id: str, owner_user_id: str | None = None) -> Flow:
    row = conn.execute("SELECT * FROM portal_flows WHERE id = ?", (flow_id,)).fetchone()
    if row is None or (owner_user_id is not None and row["owner_user_id"] != owner_user_id):
        raise CrmError("not_found", "There is no such flow.", "flow_id")
    return _flow(row)


def list_flows(conn: sqlite3.Connection, owner_user_id: str) -> list[Flow]:
    rows = conn.execute("SELECT * FROM portal_flows WHERE owner_user_id = ? ORDER BY name, id", (owner_user_id,))
    return [_flow(r) for r in rows]
