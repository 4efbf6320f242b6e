"""Passwords: argon2id hashes (``argon2-cffi``, RFC 9106's parameters), and the rules a
new password must meet (OWASP ASVS 2.1: at least 12 characters, up to 128, any
characters, no composition rules; not the e-mail address, not one of the commonest).

Hashing takes about a tenth of a second and 64 MiB on purpose: callers on the event loop
run :func:`hash_password` and :func:`verify_password` in a thread.

argon2 is loaded, and the dummy hash made, on the first password checked or set, not at
start: a serving node that nobody signs in to holds neither (0.7 MiB), and a process
that never checks a password (the CLI, a bench's hundred nodes) does not spend that
tenth of a second and those 64 MiB making the dummy hash.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher


@functools.cache
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher

    return PasswordHasher()

MIN_LENGTH = 12
MAX_LENGTH = 128

#: Passwords seen most often in breaches that are 12 characters or longer.
_COMMON = frozenset({
    "123456789012", "1234567890123", "qwertyuiopas", "password1234", "passwordpassword",
    "123123123123", "qwerty123456", "111111111111", "000000000000", "iloveyou1234",
    "abcdefghijkl", "abc123abc123", "qwertyqwerty", "letmeinletmein", "adminadmin12",
})

@functools.cache
def _dummy() -> str:
    """A hash to verify against when the user is unknown, so that an unknown e-mail takes
    as long to refuse as a wrong password."""
    return _hasher().hash("not a password anyone has")


def password_problem(password: str, email: str = "") -> str | None:
    """Why ``password`` cannot be used, in words for the person choosing it; or None."""
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    if password.lower() in _COMMON or len(set(password)) < 4:
        return "is too easy to guess; choose a passphrase of a few unrelated words"
    if email and password.strip().lower() == email.strip().lower():
        return "must not be your e-mail address"
    return None


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; takes as long when there is no hash to match."""
    from argon2.exceptions import InvalidHashError, VerificationError

    dummy = _dummy()  # made on the first check, whichever it is: no path pays for it alone
    try:
        return _hasher().verify(password_hash or dummy, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)
