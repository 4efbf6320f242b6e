"""Local identifiers: ``<prefix>_<26 chars>``, time-sortable like a ULID.

The 26 characters are 128 bits in Crockford base32 (lowercase): 48 bits of Unix time in
milliseconds, then 80 random bits from :mod:`secrets`. Ids of one prefix sort by creation
time (to the millisecond); within one millisecond their order is random.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import datetime

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,15}$")


def new_id(prefix: str, now: datetime | None = None) -> str:
    """A fresh id such as ``deal_01jd3k5r8x9v2m4q6t7w8y0z1a``. Pass ``now`` (tz-aware) to
    take the time part from the caller's clock instead of the system's."""
    if not _PREFIX.match(prefix):
        raise ValueError(f"bad id prefix {prefix!r}")
    if now is None:
        ms = time.time_ns() // 1_000_000
    elif now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    else:
        ms = int(now.timestamp() * 1000)
    value = (ms & (2**48 - 1)) << 80 | secrets.randbits(80)
    chars = [_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5)]
    return f"{prefix}_{''.join(chars)}"
