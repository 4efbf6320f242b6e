"""Admin-API tokens: a new one is a prefix and 32 random bytes; only its hash is stored."""

from __future__ import annotations

import hashlib
import os

from protocol.encoding import b64u_encode

TOKEN_PREFIX = "rnt_"  # noqa: S105 (a prefix, not a secret)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_prefix(token: str) -> str:
    """The first 4 characters after ``rnt_`` (24 bits): what wrong guesses at one token are
    counted by. Never the whole token."""
    return token.removeprefix(TOKEN_PREFIX)[:4]


def new_token() -> str:
    return TOKEN_PREFIX + b64u_encode(os.urandom(32))
