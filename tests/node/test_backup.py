"""``refnode backup`` and ``refnode restore``, as a person runs them: the real command in
a process of its own, against a node that serves and writes meanwhile.

The archive holds the database (copied with SQLite's backup API), the configuration and
the keys, with a manifest of SHA-256 checksums; restore checks all of it before anything
is put in place, and refuses a folder that is not empty or where a node runs. The stream
test, where a restored node sends again what its peer already holds, is in
test_backup_stream.py."""

from __future__ import annotations

import asyncio
import fcntl
import gzip
import hashlib
import io
import json
import os
import sqlite3
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from test_two_nodes import connect_by_invitation, referral_body

from node.base.config import load_config
from node.base.sealed_stream import CHUNK_BYTES, OpeningReader, SealedStreamError, SealingWriter
from node.storage.migrations import LATEST

ROOT = Path(__file__).resolve().parents[2]


async def refnode(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``refnode ARGS`` (as ``python -m node.cli``), standard input not a terminal."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node.cli", *args, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def members(archive: Path) -> tuple[list[str], dict[str, bytes]]:
    with tarfile.open(archive, "r:gz") as tar:
        names = tar.getnames()
        return names, {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def count(db: Path, sql: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


@pytest.mark.slow
async def test_a_backup_taken_while_the_node_writes_restores_to_a_node_that_loads(node_factory, tmp_path):
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    cid, _ = await connect_by_invitation(agency, broker)
    config = str(agency.config.config_path)
    archive = tmp_path / "agency.tar.gz"

    async def stream() -> int:
        sent = 0
        while sent < 40:
            await agency.api("POST", "/api/v1/referrals", referral_body(cid, referral_id=f"rfl_b{sent:02d}"))
            sent += 1
        return sent

    (status, out, err), sent = await asyncio.gather(refnode("--config", config, "--json", "backup", str(archive)),
                                                   stream())
    assert status == 0, err
    report = json.loads(out)
    assert report["path"] == str(archive) and report["encrypted"] is False and report["schema_version"] == LATEST
    assert archive.stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".refnode-backup-*")) and not list(tmp_path.glob("*.part"))

    names, files = members(archive)
    assert names[0] == "manifest.json"
    manifest = json.loads(files["manifest.json"])
    assert manifest["format"] == "refnode-backup/1" and manifest["node_id"] == agency.node.me
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == set(names) - {"manifest.json"}
    assert {"node.db", "refnode.toml", "admin-token", "metrics-token", "keys/index.json"} <= set(listed)
    assert sum(1 for n in listed if n.startswith("keys/")) >= 4  # identity, signing, X25519, hybrid
    for name, entry in listed.items():
        assert hashlib.sha256(files[name]).hexdigest() == entry["sha256"] and len(files[name]) == entry["bytes"]
    # Keys exactly as they are on disk (so sealed keys would stay sealed).
    for name in listed:
        if name.startswith("keys/"):
            assert files[name] == (agency.config.data_dir / name).read_bytes()
    assert not any(n.startswith(("run/", "csv-imports/")) or n in ("serve.lock", "node.db-wal") for n in names)

    target = tmp_path / "restored"
    status, out, err = await refnode("--json", "restore", str(archive), "--data-dir", str(target))
    assert status == 0, err
    assert json.loads(out)["node_id"] == agency.node.me
    assert target.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == (0o700 if p.is_dir() else 0o600) for p in target.rglob("*"))
    restored = load_config(target / "refnode.toml", {})
    assert restored.data_dir == target and restored.org_name == "Agency" and restored.port == agency.config.port
    db = target / "node.db"
    assert count(db, "PRAGMA user_version") == LATEST
    # A consistent copy, taken while referrals were being made: whole referrals, each with
    # its outbox envelope, none half written.
    made = count(db, "SELECT count(*) FROM referrals WHERE side = 'sender'")
    assert made == count(db, "SELECT count(*) FROM outbox WHERE type LIKE 'referral-offer/%'")
    assert 0 <= made <= sent
    assert (target / "admin-token").read_text() == (agency.config.data_dir / "admin-token").read_text()

    # Never over a folder that holds anything, nor where a node runs.
    status, _, err = await refnode("restore", str(archive), "--data-dir", str(target))
    assert status == 1 and "not_empty" in err
    busy = tmp_path / "busy"
    busy.mkdir()
    lock = os.open(busy / "serve.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as 'refnode serve' holds it
        status, _, err = await refnode("restore", str(archive), "--data-dir", str(busy))
    finally:
        os.close(lock)
    assert status == 1 and "running" in err
    status, _, err = await refnode("restore", str(archive))
    assert status == 2 and "--data-dir" in err
    # Nor a backup into the data folder, nor over a file.
    status, _, err = await refnode("--config", config, "backup", str(agency.config.data_dir / "b.tar.gz"))
    assert status == 1 and "outside the data folder" in err
    status, _, err = await refnode("--config", config, "backup", str(archive))
    assert status == 1 and "exists" in err


@pytest.mark.slow
async def test_a_sealed_archive_opens_only_with_its_passphrase(node_factory, tmp_path):
    agency = await node_factory("Agency")
    config = str(agency.config.config_path)
    archive = tmp_path / "sealed.bin"
    status, _, err = await refnode("--config", config, "backup", str(archive), "--passphrase")
    assert status == 1 and "REFNODE_BACKUP_PASSPHRASE" in err and not archive.exists()  # asked, nobody to ask
    secret = {"REFNODE_BACKUP_PASSPHRASE": "correct horse battery staple"}
    status, out, err = await refnode("--config", config, "--json", "backup", str(archive), "--passphrase", env=secret)
    assert status == 0 and json.loads(out)["encrypted"] is True, err
    data = archive.read_bytes()
    assert data.startswith(b"refnode-sealed-stream/1\n") and b"manifest.json" not in data and b"BEGIN" not in data

    wrong = tmp_path / "wrong"
    status, _, err = await refnode("restore", str(archive), "--data-dir", str(wrong),
                                   env={"REFNODE_BACKUP_PASSPHRASE": "wrong"})
    assert status == 1 and "wrong passphrase" in err and not wrong.exists()
    assert not list(tmp_path.glob(".wrong.restoring-*"))
    status, _, err = await refnode("restore", str(archive), "--data-dir", str(wrong))
    assert status == 1 and "passphrase" in err
    right = tmp_path / "right"
    status, out, err = await refnode("--json", "restore", str(archive), "--data-dir", str(right), env=secret)
    assert status == 0, err
    assert (right / "keys" / "index.json").read_bytes() == (agency.config.data_dir / "keys" / "index.json").read_bytes()


def rewrite(source: Path, target: Path, change: Any) -> None:
    """Copy an archive, passing each member's (name, bytes) through ``change``."""
    with tarfile.open(source, "r:gz") as tar, tarfile.open(target, "w:gz") as out:
        for m in tar.getmembers():
            data = tar.extractfile(m).read()  # type: ignore[union-attr]
            for name, body in change(m.name, data):
                info = tarfile.TarInfo(name)
                info.size = len(body)
                out.addfile(info, io.BytesIO(body))


@pytest.mark.slow
async def test_a_damaged_or_changed_archive_is_refused_and_leaves_nothing(node_factory, tmp_path):
    agency = await node_factory("Agency")
    archive = tmp_path / "good.tar.gz"
    assert (await refnode("--config", str(agency.config.config_path), "backup", str(archive)))[0] == 0

    def flipped(name: str, data: bytes) -> list[tuple[str, bytes]]:
        if name == "keys/index.json":
            data = data.replace(b'"active"', b'"retird"', 1)
        return [(name, data)]

    def extra(name: str, data: bytes) -> list[tuple[str, bytes]]:
        return [(name, data)] + ([("../outside", b"x")] if name == "node.db" else [])

    def missing(name: str, data: bytes) -> list[tuple[str, bytes]]:
        return [] if name == "admin-token" else [(name, data)]

    cases = {"changed": (flipped, "checksum"), "escaping": (extra, "outside the data folder"),
             "missing": (missing, "lacks files")}
    for label, (change, says) in cases.items():
        bad = tmp_path / f"{label}.tar.gz"
        rewrite(archive, bad, change)
        target = tmp_path / f"into-{label}"
        status, _, err = await refnode("restore", str(bad), "--data-dir", str(target))
        assert status == 1 and "bad_archive" in err and says in err, (label, err)
        assert not target.exists() and not (tmp_path / "outside").exists()
    # Bytes damaged in the compressed stream, and an archive cut short.
    data = archive.read_bytes()
    for label, bad_bytes in (("flipped", data[:200] + bytes([data[200] ^ 0xFF]) + data[201:]),
                             ("short", data[: len(data) // 2])):
        bad = tmp_path / f"{label}.tar.gz"
        bad.write_bytes(bad_bytes)
        status, _, err = await refnode("restore", str(bad), "--data-dir", str(tmp_path / f"into-{label}"))
        assert status == 1 and "bad_archive" in err, (label, err)
        assert not (tmp_path / f"into-{label}").exists()
    # A database that SQLite finds damaged is not put in place, even with matching sums.
    def broken_db(name: str, data: bytes) -> list[tuple[str, bytes]]:
        return [(name, data[:4096] + b"\xff" * 4096 + data[8192:] if name == "node.db" else data)]

    def resum(name: str, data: bytes) -> list[tuple[str, bytes]]:
        if name != "manifest.json":
            return broken_db(name, data)
        about = json.loads(data)
        for entry in about["files"]:
            if entry["path"] == "node.db":
                with tarfile.open(archive, "r:gz") as tar:
                    body = broken_db("node.db", tar.extractfile("node.db").read())[0][1]  # type: ignore[union-attr]
                entry["sha256"], entry["bytes"] = hashlib.sha256(body).hexdigest(), len(body)
        return [(name, json.dumps(about).encode())]

    bad = tmp_path / "damaged-db.tar.gz"
    rewrite(archive, bad, resum)
    status, _, err = await refnode("restore", str(bad), "--data-dir", str(tmp_path / "into-db"))
    assert status == 1 and "damaged" in err and not (tmp_path / "into-db").exists()
    assert gzip.decompress(archive.read_bytes())  # the good one is still good


def seal(data: bytes, passphrase: bytes = b"pw") -> bytes:
    sink = io.BytesIO()
    writer = SealingWriter(sink, passphrase)
    for start in range(0, len(data), 100_000):
        writer.write(data[start:start + 100_000])
    writer.close()
    return sink.getvalue()


def unseal(sealed: bytes, passphrase: bytes = b"pw") -> bytes:
    return OpeningReader(io.BufferedReader(io.BytesIO(sealed)), passphrase).read()


def frames(sealed: bytes) -> tuple[bytes, list[bytes]]:
    """The header, and each chunk with its length prefix."""
    header_end = sealed.index(b"\n", sealed.index(b"\n") + 1) + 1
    out, at = [], header_end
    while at < len(sealed):
        size = int.from_bytes(sealed[at:at + 4], "big")
        out.append(sealed[at:at + 4 + size])
        at += 4 + size
    return sealed[:header_end], out


@pytest.mark.parametrize("size", [0, 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES - 7])
def test_a_sealed_stream_gives_back_what_went_in(size):
    data = os.urandom(size)
    assert unseal(seal(data)) == data


def test_a_sealed_stream_refuses_any_change_to_its_chunks():
    data = os.urandom(3 * CHUNK_BYTES + 10)
    sealed = seal(data)
    header, chunks = frames(sealed)
    assert len(chunks) == 4
    changed = {
        "wrong passphrase": (sealed, b"other"),
        "a byte flipped": (sealed[:-50] + bytes([sealed[-50] ^ 1]) + sealed[-49:], b"pw"),
        "chunks swapped": (header + chunks[1] + chunks[0] + chunks[2] + chunks[3], b"pw"),
        "a chunk dropped": (header + chunks[0] + chunks[2] + chunks[3], b"pw"),
        "the last chunk dropped": (header + b"".join(chunks[:3]), b"pw"),
        "a chunk repeated": (header + chunks[0] + chunks[0] + b"".join(chunks[1:]), b"pw"),
        "bytes after the end": (sealed + b"more", b"pw"),
        "the header changed": (sealed.replace(b'"chunk": 1048576', b'"chunk": 1048577'), b"pw"),
        "cut short": (sealed[: len(sealed) // 2], b"pw"),
    }
    for label, (bad, passphrase) in changed.items():
        with pytest.raises(SealedStreamError):
            unseal(bad, passphrase)
            pytest.fail(f"{label}: opened")
