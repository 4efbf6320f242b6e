"""The suite's own node: throwaway keys, made for one run and never written anywhere."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from protocol.discovery import PeerKeys, build_discovery, sign_discovery, verify_discovery
from protocol.keys import DecryptionKey, SigningKey
from protocol.suites import MANDATORY_SUITE
from protocol.wire import INBOX_PATH


def new_id(prefix: str) -> str:
    """An id for an envelope, a connection or a referral: 128 random bits."""
    return f"{prefix}_{os.urandom(16).hex()}"


@dataclass
class Peer:
    """A node as far as the target can tell: an identity key (its node id), an active
    operational signing key, an X25519 encryption key and a signed discovery document."""

    name: str
    base_url: str
    identity: SigningKey = field(default_factory=lambda: SigningKey.from_seed(os.urandom(32)))
    signing: SigningKey = field(default_factory=lambda: SigningKey.from_seed(os.urandom(32)))
    encryption: DecryptionKey = field(default_factory=lambda: DecryptionKey.x25519(os.urandom(32)))
    retired: list[SigningKey] = field(default_factory=list)
    discovery: bytes = b""
    issued_at: datetime | None = None

    @property
    def node_id(self) -> str:
        return self.identity.kid

    @property
    def inbox_url(self) -> str:
        return self.base_url.rstrip("/") + INBOX_PATH

    def publish(self, now: datetime) -> bytes:
        """Sign a discovery document of the current keys, issued at ``now``."""
        doc = build_discovery(
            name=self.name,
            inbox_url=self.inbox_url,
            identity=self.identity.public,
            signing=[(self.signing.public, "active")] + [(k.public, "retired") for k in self.retired],
            encryption=[(MANDATORY_SUITE, self.encryption, "active")],
            now=now,
        )
        self.discovery = sign_discovery(doc, self.identity)
        self.issued_at = now
        return self.discovery

    def rotate(self, now: datetime) -> tuple[SigningKey, bytes]:
        """A new signing key (the old one retired) and a later document; returns the old
        key and the old document, for the rollback check."""
        old_key, old_doc = self.signing, self.discovery
        self.retired.append(old_key)
        self.signing = SigningKey.from_seed(os.urandom(32))
        later = max(now, (self.issued_at or now) + timedelta(seconds=1))
        self.publish(later)
        return old_key, old_doc

    def keys(self) -> PeerKeys:
        return verify_discovery(self.discovery, expected_node_id=self.node_id)[1]
