"""Our own discovery document, signed once and kept in the data folder (``discovery.json``).

A node restarts far more often than what its document says changes. Signing it needs the
identity key, and with it ``cryptography``'s Rust bindings (some 7 MiB that an idle node
would hold for nothing), and a new document every start. So the document signed before is
served again, the same bytes with the same ``issued_at`` (which the protocol allows: a
peer applies a document whose ``issued_at`` is the same as the one it holds, section 4.9),
as long as it was made from what would make it now: the organisation's name, the inbox
URL, the largest envelope, the document's type and protocol versions, and the key set
(each key's role, curve, status and kid; a kid is the thumbprint of the public key, so the
kids name the keys). Anything else (a key rotation, a new name or URL, an upgrade that
changes the document's version) signs a new one, whose ``issued_at`` is later than the
last one's even if the clock went back.

The file holds nothing secret: the document is public. A file that is missing, damaged
or cannot be written costs only a new signature.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

from node.base.config import Config
from node.base.files import replace_file
from node.base.keystore import KeyStore
from node.base.logs import failure_fields, get_logger
from protocol.discovery import build_discovery, sign_discovery
from protocol.errors import ProtocolError
from protocol.models import parse_ts
from protocol.wire import INBOX_PATH, SUPPORTED_MAJORS, DocumentType, versioned

log = get_logger("node.discovery")

FILE = "discovery.json"
FORMAT = "refnode-own-discovery/1"


def inputs_digest(config: Config, keys: KeyStore) -> str:
    """SHA-256 of everything our discovery document is made from, but the time."""
    facts = {
        "type": versioned(DocumentType.DISCOVERY),
        "versions": list(SUPPORTED_MAJORS),
        "name": config.org_name,
        "inbox": config.public_url + INBOX_PATH,
        "max_envelope_bytes": config.max_envelope_bytes,
        "keys": [[r.role, r.crv, r.status, r.kid] for r in keys.records],
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode("utf-8")).hexdigest()


def _read(data_dir: Path) -> dict[str, str] | None:
    try:
        body = json.loads((data_dir / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    fields = ("inputs", "issued_at", "document")
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        return None
    if not all(isinstance(body.get(f), str) for f in fields):
        return None
    return {f: body[f] for f in fields}


def stored(config: Config, keys: KeyStore) -> bytes | None:
    """The document signed before, if it was made from what would make it now."""
    body = _read(config.data_dir)
    if body is None or body["inputs"] != inputs_digest(config, keys):
        return None
    return body["document"].encode("utf-8")


def sign(config: Config, keys: KeyStore, now: datetime) -> bytes:
    """A new document, issued at ``now`` or a second after the last one, whichever is
    later; kept for the next start."""
    last = _read(config.data_dir)
    if last is not None:
        try:
            now = max(now, parse_ts(last["issued_at"]) + timedelta(seconds=1))
        except ProtocolError:
            pass  # a damaged file: the clock decides
    doc = build_discovery(name=config.org_name, inbox_url=config.public_url + INBOX_PATH,
                          identity=keys.identity.public, signing=keys.signing_entries,
                          encryption=keys.encryption_entries, now=now,
                          max_envelope_bytes=config.max_envelope_bytes)
    raw = sign_discovery(doc, keys.identity)
    body = {"format": FORMAT, "inputs": inputs_digest(config, keys), "issued_at": doc.issued_at,
            "document": raw.decode("utf-8")}
    try:
        # public: anyone may fetch it; each process (the node's, its inbox fronts) may write it
        replace_file(config.data_dir / FILE, (json.dumps(body, indent=2) + "\n").encode("utf-8"), mode=0o644)
    except OSError as exc:
        log.warning("could not keep the discovery document; the next start signs a new one",
                    **failure_fields(exc))
    return raw
