"""The one wording of moments for pages and mails (node.base.when)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from node.base.when import when

SYDNEY = ZoneInfo("Australia/Sydney")


def test_a_stored_timestamp_in_the_organisations_zone() -> None:
    assert when("2026-12-03T23:05:00Z", SYDNEY) == "4 Dec 2026, 10:05"  # the next day in Sydney
    assert when("2026-12-03T23:05:00Z", SYDNEY, "date") == "4 Dec 2026"
    assert when(datetime(2026, 7, 1, 2, 0, tzinfo=UTC), SYDNEY, "datetime_zone") == "1 Jul 2026, 12:00 AEST"


def test_days_and_nothing() -> None:
    assert when(date(2026, 3, 9)) == "9 Mar 2026"
    assert when(None) == "" and when("") == ""
    assert when("2026-01-02T03:04:05Z") == "2 Jan 2026, 03:04"  # no zone: as stored, in UTC
