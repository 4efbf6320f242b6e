"""Referrals from partners (issue 13), for the reports beside referrals from connections:
per partner, the deals they created in the portal over the report's days, and how those
deals stand now (their stage's outcome: won, lost, or still being worked).

Days are UTC calendar days on the deal's ``created_at``, ``to`` exclusive, as the
referral report's (``node.federation.reporting``). A partner's deals are received
referrals: a report of the referrals we sent has none.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal


@dataclass(frozen=True)
class PartnerRow:
    name: str
    email: str
    removed: bool
    received: int
    won: int
    lost: int

    @property
    def in_progress(self) -> int:
        return self.received - self.won - self.lost

    @property
    def conversion(self) -> str:
        """won / received, 4 places, as the referral report has it."""
        if not self.received:
            return "0"
        return str((Decimal(self.won) / Decimal(self.received)).quantize(Decimal("0.0001"), ROUND_HALF_UP))


def by_partner(conn: sqlite3.Connection, from_date: date | None, to_date: date | None) -> list[PartnerRow]:
    """Every partner with deals created in ``[from_date, to_date)``, most deals first."""
    rows = conn.execute(
        """SELECT u.name, u.email, p.removed_at IS NOT NULL AS removed, count(*) AS received,
                  sum(s.outcome = 'won') AS won, sum(s.outcome = 'lost') AS lost
           FROM deal_partners dp JOIN deals d ON d.id = dp.deal_id JOIN stages s ON s.id = d.stage_id
           JOIN users u ON u.id = dp.partner_id JOIN partner_profiles p ON p.user_id = u.id
           WHERE dp.how = 'created' AND (:start IS NULL OR d.created_at >= :start)
             AND (:end IS NULL OR d.created_at < :end)
           GROUP BY u.id ORDER BY received DESC, u.name COLLATE NOCASE""",
        {"start": from_date.isoformat() if from_date else None, "end": to_date.isoformat() if to_date else None})
    return [PartnerRow(r["name"], r["email"], bool(r["removed"]), r["received"], r["won"] or 0, r["lost"] or 0)
            for r in rows]
