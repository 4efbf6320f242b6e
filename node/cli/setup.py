"""``refnode init``: the data folder, the keys, the database and the first admin user."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from node.base.clock import Clock, SystemClock, ts
from node.base.config import Config, derived_public_url, write_default_config
from node.base.ids import new_id
from node.base.keystore import KeyStore
from node.base.tokens import hash_token, metrics_token, new_token
from node.crm.fields import Email
from node.federation import own_discovery
from node.mail.links import issue_link
from node.storage import store
from node.storage.db import Database

TOKEN_FILE = "admin-token"  # noqa: S105 (a file name)


@functools.cache
def _email() -> TypeAdapter[str]:
    return TypeAdapter(Email)  # made when first needed: every command imports this module


def check_email(value: str) -> str:
    """``value`` if it is an email address as the users API takes one, else ValueError."""
    try:
        return _email().validate_python(value)
    except ValidationError:
        raise ValueError(f"{value!r} is not an email address (name@example.org)") from None


@dataclass(frozen=True)
class InitResult:
    node_id: str
    fingerprint: str
    admin_token: str
    token_path: Path
    #: The first admin's one-time link to choose their console password.
    password_link: str


def init_node(config: Config, *, admin_email: str, admin_name: str, passphrase: bytes | None = None,
              clock: Clock | None = None, write_config: bool = True) -> InitResult:
    """Create everything a node needs. Refuses to overwrite an existing node."""
    clock = clock or SystemClock()
    if config.keys_dir.exists() and any(config.keys_dir.iterdir()):
        raise FileExistsError(f"{config.keys_dir} already holds keys; this node is initialised")
    config.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(config.data_dir, 0o700)
    if write_config and not config.config_path.exists():
        # A public_url is written only when it was chosen: otherwise it follows the port
        # (REFNODE_PORT, 'serve --port').
        chosen = {} if config.public_url == derived_public_url(config.host, config.port) else {
            "public_url": config.public_url}
        write_default_config(config.config_path, data_dir=str(config.data_dir), host=config.host,
                             port=config.port, org_name=config.org_name, **chosen)
    keys = KeyStore.create(config.keys_dir, passphrase, config.enable_pq_suite)
    token = new_token()
    db = Database(config.database_path)
    try:
        def first_admin(conn):  # type: ignore[no-untyped-def]
            uid = new_id("usr")
            now = ts(clock)
            conn.execute("INSERT INTO users (id, email, name, role, active, created_at) VALUES (?, ?, ?, 'admin', 1, ?)",
                         (uid, admin_email, admin_name, now))
            store.insert_token(conn, id=new_id("tok"), user_id=uid, token_hash=hash_token(token),
                               label="created by refnode init", now=now)
            return issue_link(conn, config, uid, "set", clock.now(), mail=False)

        link = db.run(first_admin)
    finally:
        db.close_sync()
    os.chmod(config.database_path, 0o600)
    metrics_token(config.data_dir)  # for Prometheus, before the node first starts
    own_discovery.sign(config, keys, clock.now())  # so that even the first start signs nothing
    token_path = config.data_dir / TOKEN_FILE
    fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return InitResult(keys.node_id, keys.fingerprint, token, token_path, link)
