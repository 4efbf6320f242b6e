"""Admin-API tokens: a new one is a prefix and 32 random bytes; only its hash is stored.
And the token of `/metrics`, kept in a 0600 file of the data folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

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


#: The file in the data folder that holds the token ``/metrics`` asks for (mode 0600).
METRICS_TOKEN_FILE = "metrics-token"  # noqa: S105 (a file name)


def metrics_token(data_dir: Path) -> str:
    """The token that opens ``/metrics``, from ``<data_dir>/metrics-token``; a new one is
    written there (mode 0600) if there is none. Prometheus sends it as a bearer token
    (``credentials_file``); it opens nothing else."""
    path = data_dir / METRICS_TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_private(path)
    token = "rnm_" + b64u_encode(os.urandom(32))
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    return token


def _read_private(path: Path) -> str:
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path} must be readable by its owner only (chmod 600 {path})")
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise ValueError(f"{path} is empty: delete it, and the node writes a new token at its next start")
    return token
