"""node.keystore: real key files in tmp_path, checked with the protocol's own functions."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from node.base.key_files import KeyStoreError
from node.base.keystore import KeyStore
from protocol import jws
from protocol.discovery import build_discovery, sign_discovery, verify_discovery
from protocol.errors import ProtocolError
from protocol.keys import CRV_MLKEM768_X25519, DecryptionKey, fingerprint_of, xwing_expand
from protocol.suites import SuiteId, hpke_info, open_sealed, seal
from protocol.wire import TYP_DISCOVERY

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
PASSPHRASE = b"correct horse battery staple"
INFO = hpke_info("sender-node", "recipient-node", "env-1")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def seal_to(store: KeyStore, suite: SuiteId, plaintext: bytes) -> bytes:
    """What a peer does: seal to our active public key of ``suite``."""
    key = next(k for s, k, status in store.encryption_entries if s == suite and status == "active")
    return seal(suite, key.public, plaintext, INFO)


def open_with(store: KeyStore, suite: SuiteId, kid: str, sealed: bytes) -> bytes:
    return open_sealed(suite, store.decryption_keys[kid], sealed, INFO)


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE], ids=["plain", "encrypted"])
def test_create_and_load_round_trip(tmp_path: Path, passphrase: bytes | None) -> None:
    keys_dir = tmp_path / "keys"
    created = KeyStore.create(keys_dir, passphrase, enable_pq=True, now=NOW)
    loaded = KeyStore.load(keys_dir, passphrase)

    assert loaded.node_id == created.node_id == created.identity.kid
    assert loaded.fingerprint == fingerprint_of(created.node_id)
    assert loaded.identity.seed() == created.identity.seed()
    assert loaded.signing.seed() == created.signing.seed()
    assert loaded.signing.kid != loaded.identity.kid
    assert {kid: k.secret for kid, k in loaded.decryption_keys.items()} == {
        kid: k.secret for kid, k in created.decryption_keys.items()
    }
    assert [s for s, _, _ in loaded.encryption_entries] == [
        SuiteId.MLKEM768X25519_CHACHA,
        SuiteId.X25519_CHACHA,
    ]
    assert loaded.suites == (SuiteId.MLKEM768X25519_CHACHA, SuiteId.X25519_CHACHA)
    assert [(k.kid, s) for k, s in loaded.signing_entries] == [(created.signing.kid, "active")]

    # a signature made with the created key verifies with the loaded public key, and back
    signed = jws.sign_flattened({"typ": TYP_DISCOVERY}, b"hello", created.signing)
    parsed = jws.parse_flattened(signed, typ=TYP_DISCOVERY)
    parsed.verify(loaded.signing.public)
    loaded.identity.public.verify(created.identity.sign(b"data"), b"data")

    # what a peer seals to the created store's public keys, the loaded store opens
    for suite, key, _ in created.encryption_entries:
        sealed = seal_to(created, suite, b"referral payload")
        assert open_with(loaded, suite, key.kid, sealed) == b"referral payload"

    # and the entries build a discovery document that verifies against the node id
    doc = build_discovery(
        name="Acme",
        inbox_url="http://127.0.0.1:8701/refnode/v1/inbox",
        identity=loaded.identity.public,
        signing=loaded.signing_entries,
        encryption=loaded.encryption_entries,
        now=NOW,
    )
    _, peer = verify_discovery(
        sign_discovery(doc, loaded.identity), expected_node_id=created.node_id
    )
    assert set(peer.signing) == {created.signing.kid}


def test_without_pq_only_x25519(tmp_path: Path) -> None:
    store = KeyStore.create(tmp_path / "keys", None, enable_pq=False)
    assert [(s, k.crv) for s, k, _ in store.encryption_entries] == [
        (SuiteId.X25519_CHACHA, "X25519")
    ]
    assert KeyStore.load(tmp_path / "keys", None).suites == (SuiteId.X25519_CHACHA,)


def test_file_modes(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    store = KeyStore.create(keys_dir, PASSPHRASE, enable_pq=True)
    store.rotate_signing()
    store.rotate_encryption()
    assert mode(keys_dir) == 0o700
    files = sorted(keys_dir.iterdir())
    # identity, 2 signing, 2 x25519, 2 hybrid, index
    assert len(files) == 8
    assert keys_dir / "index.json" in files
    for path in files:
        assert mode(path) == 0o600, path


def test_index_holds_no_secrets(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    store = KeyStore.create(keys_dir, None, enable_pq=True)
    text = (keys_dir / "index.json").read_text()
    index = json.loads(text)
    assert index["node_id"] == store.node_id
    assert {entry["kid"] for entry in index["keys"]} == {
        store.identity.kid,
        store.signing.kid,
        *store.decryption_keys,
    }
    raw = text.encode()
    for secret in [
        store.identity.seed(),
        store.signing.seed(),
        *(k.secret for k in store.decryption_keys.values()),
    ]:
        assert secret not in raw
        assert base64.urlsafe_b64encode(secret).rstrip(b"=") not in raw
        assert base64.b64encode(secret) not in raw


def test_plain_keys_are_readable_pkcs8(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    store = KeyStore.create(keys_dir, None, enable_pq=True)
    identity_file = next(keys_dir.glob("identity-*.pem")).read_bytes()
    assert identity_file.startswith(b"-----BEGIN PRIVATE KEY-----")
    hybrid = json.loads(next(keys_dir.glob("mlkem768x25519-*.json")).read_text())
    (pq,) = [k for k in store.decryption_keys.values() if k.crv == CRV_MLKEM768_X25519]
    assert base64.urlsafe_b64decode(hybrid["secret"] + "==") == pq.secret


def test_passphrase_protects_the_files(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    store = KeyStore.create(keys_dir, PASSPHRASE, enable_pq=True)
    secrets = [
        store.identity.seed(),
        store.signing.seed(),
        *(k.secret for k in store.decryption_keys.values()),
    ]
    (pq,) = [k for k in store.decryption_keys.values() if k.crv == CRV_MLKEM768_X25519]
    assert len(pq.secret) == 32  # the X-Wing seed, the form X-Wing libraries load
    secrets += list(xwing_expand(pq.secret))  # the ML-KEM seed and the X25519 scalar
    for path in keys_dir.iterdir():
        data = path.read_bytes()
        if path.suffix == ".pem":
            # Sealed with scrypt + ChaCha20-Poly1305, not PKCS#8's weak PBKDF2.
            assert b'"format": "refnode-sealed-pem/1"' in data and b'"name": "scrypt"' in data, path
            assert b"PRIVATE KEY" not in data, path
        assert PASSPHRASE not in data
        for secret in secrets:
            assert secret not in data, path
            assert base64.urlsafe_b64encode(secret).rstrip(b"=") not in data, path
            assert base64.b64encode(secret) not in data, path


def test_wrong_or_missing_passphrase(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    KeyStore.create(keys_dir, PASSPHRASE, enable_pq=True)
    with pytest.raises(KeyStoreError, match="wrong passphrase"):
        KeyStore.load(keys_dir, b"incorrect horse")
    with pytest.raises(KeyStoreError, match="passphrase is required"):
        KeyStore.load(keys_dir, None)
    with pytest.raises(KeyStoreError, match="empty"):
        KeyStore.load(keys_dir, b"")


def test_passphrase_for_plain_keys_is_refused(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    KeyStore.create(keys_dir, None, enable_pq=False)
    with pytest.raises(KeyStoreError, match="not encrypted"):
        KeyStore.load(keys_dir, PASSPHRASE)


def test_wrong_passphrase_on_the_hybrid_file(tmp_path: Path) -> None:
    """The hybrid key has its own sealing (scrypt + ChaCha20-Poly1305): a wrong passphrase
    is caught there too, not only by the PKCS#8 files."""
    keys_dir = tmp_path / "keys"
    KeyStore.create(keys_dir, PASSPHRASE, enable_pq=True)
    other = tmp_path / "other"
    KeyStore.create(other, b"another passphrase", enable_pq=True)
    index = json.loads((keys_dir / "index.json").read_text())
    # put the other store's hybrid key file in place of ours, under our file name
    (ours,) = [e for e in index["keys"] if e["crv"] == CRV_MLKEM768_X25519]
    theirs = next(other.glob("mlkem768x25519-*.json"))
    target = keys_dir / ours["file"]
    target.write_bytes(theirs.read_bytes())
    with pytest.raises(KeyStoreError, match="wrong passphrase"):
        KeyStore.load(keys_dir, PASSPHRASE)


def test_create_refuses_to_replace_keys(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    store = KeyStore.create(keys_dir, None, enable_pq=False)
    with pytest.raises(KeyStoreError, match="already"):
        KeyStore.create(keys_dir, None, enable_pq=False)
    assert KeyStore.load(keys_dir, None).node_id == store.node_id


def test_load_refuses_loose_permissions_and_missing_keys(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    with pytest.raises(KeyStoreError, match="no keys"):
        KeyStore.load(keys_dir, None)
    KeyStore.create(keys_dir, None, enable_pq=False)
    identity_file = next(keys_dir.glob("identity-*.pem"))
    identity_file.chmod(0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        KeyStore.load(keys_dir, None)
    identity_file.chmod(0o600)
    identity_file.unlink()
    with pytest.raises(KeyStoreError, match="missing"):
        KeyStore.load(keys_dir, None)


def test_plain_private_keys_are_read_on_first_use(tmp_path: Path) -> None:
    """Unsealed keys are read when one is first used (a node that only serves its kept
    discovery document needs none): what the node needs before, the index says, and a file
    that does not hold its listed key is told then."""
    keys_dir = tmp_path / "keys"
    created = KeyStore.create(keys_dir, None, enable_pq=True, now=NOW)
    loaded = KeyStore.load(keys_dir, None)
    assert (loaded.node_id, loaded.signing_kid) == (created.node_id, created.signing.kid)
    assert loaded.suites == (SuiteId.MLKEM768X25519_CHACHA, SuiteId.X25519_CHACHA)

    identity_file = next(keys_dir.glob("identity-*.pem"))
    identity_file.write_bytes(next(keys_dir.glob("signing-*.pem")).read_bytes())
    swapped = KeyStore.load(keys_dir, None)
    assert swapped.node_id == created.node_id
    with pytest.raises(KeyStoreError, match="does not hold key"):
        swapped.identity.sign(b"x")


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE], ids=["plain", "encrypted"])
def test_rotation(tmp_path: Path, passphrase: bytes | None) -> None:
    keys_dir = tmp_path / "keys"
    store = KeyStore.create(keys_dir, passphrase, enable_pq=True, now=NOW)
    node_id = store.node_id
    old_signing = store.signing
    old_entries = {s: k for s, k, _ in store.encryption_entries}
    sealed = {s: seal_to(store, s, b"sent before the rotation") for s in old_entries}

    new_signing = store.rotate_signing(now=NOW)
    added = dict(store.rotate_encryption(now=NOW))

    reloaded = KeyStore.load(keys_dir, passphrase)
    for current in (store, reloaded):
        assert current.node_id == node_id
        assert current.identity.kid == node_id
        assert current.signing.kid == new_signing.kid != old_signing.kid
        assert current.signing_entries == [
            (new_signing.public, "active"),
            (old_signing.public, "retired"),
        ]
        entries = [(s, k.kid, status) for s, k, status in current.encryption_entries]
        assert entries == [
            (SuiteId.MLKEM768X25519_CHACHA, added[SuiteId.MLKEM768X25519_CHACHA].kid, "active"),
            (SuiteId.X25519_CHACHA, added[SuiteId.X25519_CHACHA].kid, "active"),
            (
                SuiteId.MLKEM768X25519_CHACHA,
                old_entries[SuiteId.MLKEM768X25519_CHACHA].kid,
                "retired",
            ),
            (SuiteId.X25519_CHACHA, old_entries[SuiteId.X25519_CHACHA].kid, "retired"),
        ]
        # envelopes sealed to the retired keys still open
        for suite, key in old_entries.items():
            assert open_with(current, suite, key.kid, sealed[suite]) == b"sent before the rotation"
        # and the new keys are what peers now seal to
        for suite, key in added.items():
            assert open_with(current, suite, key.kid, seal_to(current, suite, b"after")) == b"after"

    # the discovery document publishes the old signing key as retired, not usable
    doc = build_discovery(
        name="Acme",
        inbox_url="http://127.0.0.1:8701/refnode/v1/inbox",
        identity=reloaded.identity.public,
        signing=reloaded.signing_entries,
        encryption=reloaded.encryption_entries,
        now=NOW,
    )
    status = {entry.kid: entry.status for entry in doc.keys}
    assert status[old_signing.kid] == "retired"
    assert status[new_signing.kid] == "active"
    _, peer = verify_discovery(sign_discovery(doc, reloaded.identity), expected_node_id=node_id)
    assert set(peer.signing) == {new_signing.kid}
    assert old_signing.kid in peer.all_signing
    assert {k.kid for _, k in peer.encryption} == {k.kid for k in added.values()}


def test_rotation_can_add_or_drop_the_pq_suite(tmp_path: Path) -> None:
    store = KeyStore.create(tmp_path / "keys", None, enable_pq=False)
    assert store.suites == (SuiteId.X25519_CHACHA,)
    store.rotate_encryption(enable_pq=True)
    assert store.suites == (SuiteId.MLKEM768X25519_CHACHA, SuiteId.X25519_CHACHA)
    store.rotate_encryption(enable_pq=False)
    assert KeyStore.load(tmp_path / "keys", None).suites == (SuiteId.X25519_CHACHA,)


def test_a_key_does_not_open_what_was_sealed_to_another(tmp_path: Path) -> None:
    """Guards the round-trip tests above: opening with the wrong key must fail."""
    a = KeyStore.create(tmp_path / "a", None, enable_pq=False)
    b = KeyStore.create(tmp_path / "b", None, enable_pq=False)
    sealed = seal_to(a, SuiteId.X25519_CHACHA, b"for a")
    (b_key,) = b.decryption_keys.values()
    with pytest.raises(ProtocolError):
        open_sealed(SuiteId.X25519_CHACHA, b_key, sealed, INFO)


def test_a_hybrid_key_stored_expanded_by_an_older_node_still_loads_and_opens(
    tmp_path: Path,
) -> None:
    """Nodes made before the X-Wing seed became the key's form stored the 96 expanded
    bytes. Such a data folder must keep working: same kid, and it opens what is sealed to it."""
    keys_dir = tmp_path / "keys"
    store = KeyStore.create(keys_dir, None, enable_pq=True)
    (pq,) = [k for k in store.decryption_keys.values() if k.crv == CRV_MLKEM768_X25519]
    path = next(keys_dir.glob("mlkem768x25519-*.json"))
    body = json.loads(path.read_text())
    expanded = b"".join(xwing_expand(pq.secret))
    body["secret"] = base64.urlsafe_b64encode(expanded).rstrip(b"=").decode()
    path.write_text(json.dumps(body))
    loaded = KeyStore.load(keys_dir, None).decryption_keys[pq.kid]
    assert loaded.secret == expanded and loaded.kid == pq.kid
    info = hpke_info("a", "b", "env-1")
    sealed = seal(SuiteId.MLKEM768X25519_CHACHA, pq.public, b"old key", info)
    assert open_sealed(SuiteId.MLKEM768X25519_CHACHA, loaded, sealed, info) == b"old key"
    with pytest.raises(ValueError):
        DecryptionKey.mlkem768_x25519(expanded)  # the published form is the 32-byte seed
