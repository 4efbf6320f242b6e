"""A moment as people read it, in the organisation's time zone: the one wording of dates
and times for the console's pages and the node's mails (``3 Dec 2026, 14:05``)."""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from typing import Literal

from protocol.models import parse_ts

Style = Literal["date", "datetime", "datetime_zone"]


def when(value: str | datetime | date | None, zone: tzinfo | None = None, style: Style = "datetime") -> str:
    """``value`` (a stored timestamp, a datetime or a day) in ``zone``: ``date`` gives the
    day (``3 Dec 2026``), ``datetime`` the day and time, ``datetime_zone`` adds the zone's
    abbreviation, for a mail read far from the console."""
    if value is None or value == "":
        return ""
    if isinstance(value, date) and not isinstance(value, datetime):
        return day(value)
    moment = parse_ts(value) if isinstance(value, str) else value
    local = moment.astimezone(zone) if zone is not None else moment
    if style == "date":
        return day(local.date())
    if style == "datetime_zone":
        return f"{day(local.date())}, {local:%H:%M %Z}"
    return f"{day(local.date())}, {local:%H:%M}"


def day(value: date) -> str:
    """A calendar day: ``2 Dec 2026``."""
    return f"{value.day} {value:%b %Y}"
