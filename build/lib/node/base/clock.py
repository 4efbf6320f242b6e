"""The node's clock. Tests may pass a :class:`FakeClock`; nothing else reads the time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from protocol.models import format_ts


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    def set(self, moment: datetime) -> None:
        self._now = moment


def ts(clock: Clock) -> str:
    """Now as stored text (RFC 3339, UTC, whole seconds)."""
    return format_ts(clock.now())
