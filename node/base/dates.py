"""Times and days as people read them ("3 Dec 2026, 23:32"; "2 Dec 2026"): one way for the
console's pages, the notes the node writes on deals, and the messages people see."""

from __future__ import annotations

from datetime import date, datetime, tzinfo

from protocol.models import parse_ts


def when(value: str | datetime | None, zone: tzinfo | None = None, style: str = "datetime") -> str:
    """A stored timestamp in the organisation's time zone, as people read it."""
    if value is None or value == "":
        return ""
    moment = parse_ts(value) if isinstance(value, str) else value
    local = moment.astimezone(zone) if zone is not None else moment
    if style == "date":
        return day(local.date())
    return local.strftime("%-d %b %Y, %H:%M")


def day(value: date) -> str:
    """A calendar day: "2 Dec 2026"."""
    return f"{value.day} {value:%b %Y}"
