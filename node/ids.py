"""Local identifiers: ``<prefix>_<26 chars>``, time-sortable like a ULID.

The 26 characters are 128 bits in Crockford base32 (lowercase): 48 bits of Unix time in
milliseconds, then 80 random bits from :mod:`secrets`. Ids sort by creation time; ids
made in the same millisecond sort in the order they were made (the random part of each
is the previous one's plus a random step, as in a monotonic ULID).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from datetime import datetime

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_CROCKFORD_B = _CROCKFORD.encode("ascii")
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,15}$")
_lock = threading.Lock()
_last = (-1, 0)  # (milliseconds, random part) of the latest id


def new_id(prefix: str, now: datetime | None = None) -> str:
    """A fresh id such as ``deal_01kdyak3487aj56vd0mvtn85v7``. Pass ``now`` (tz-aware) to
    take the time part from the caller's clock instead of the system's."""
    global _last
    if not _PREFIX.match(prefix):
        raise ValueError(f"bad id prefix {prefix!r}")
    if now is None:
        ms = time.time_ns() // 1_000_000
    elif now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    else:
        ms = int(now.timestamp() * 1000)
    ms &= 2**48 - 1
    with _lock:
        last_ms, last_random = _last
        random = last_random + 1 + secrets.randbits(32) if ms == last_ms else secrets.randbits(80)
        if random >= 2**80:  # about never: give up ordering within this millisecond
            random = secrets.randbits(80)
        _last = (ms, random)
    value = ms << 80 | random
    return f"{prefix}_{_b32(value)}"


def _b32(value: int) -> str:
    out = bytearray(26)
    for i in range(25, -1, -1):
        out[i] = _CROCKFORD_B[value & 31]
        value >>= 5
    return out.decode("ascii")
