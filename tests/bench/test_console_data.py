"""bench/console_pages.py's data generator, at a small scale: the database it writes is one
the node's own code could have written, and the real node opens it and serves from it."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path

import aiohttp
import pytest
from conftest import RunningNode, free_port

from node.base.config import Config
from node.base.keystore import KeyStore
from node.federation import evidence
from node.federation.runtime import Node
from node.storage.db import Database
from protocol.discovery import PeerKeys, verify_discovery
from protocol.receipts import verify_receipt

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from console_data import Built, Scale, build  # noqa: E402
from web_kit import PASSWORD  # noqa: E402


def _rows(db: sqlite3.Connection, sql: str, *args: object) -> list[sqlite3.Row]:
    return db.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("bench") / "node", Scale(deals=1000, referrals=100), port=free_port(),
                 log_level="warning")


def test_generated_database_is_consistent(built: Built) -> None:
    assert built.counts["deals"] == 1000 and built.counts["referrals"] == 100
    db = sqlite3.connect(built.config.database_path)
    db.row_factory = sqlite3.Row
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not db.execute("PRAGMA foreign_key_check").fetchall()
    sides = dict(_rows(db, "SELECT side, count(*) FROM referrals GROUP BY side"))
    assert sides == {"sender": 50, "receiver": 50}
    # Every referral names a live connection with a known peer, and a deal; a received one's
    # deal is the one filed from it.
    assert not _rows(db, """SELECT r.local_id FROM referrals r LEFT JOIN connections c ON c.id = r.connection_id
                            LEFT JOIN peers p ON p.node_id = r.peer_node_id LEFT JOIN deals d ON d.id = r.deal_id
                            WHERE c.state IS NOT 'active' OR c.peer_node_id != r.peer_node_id OR p.node_id IS NULL
                               OR d.id IS NULL OR (r.side = 'receiver') != (d.origin = 'referral')
                               OR (r.side = 'receiver' AND (d.referral_id, d.referral_peer_node_id)
                                   IS NOT (r.id, r.peer_node_id))""")
    # The timeline matches the state: seq 1..last_seq, all applied, the last one's status.
    for r in _rows(db, "SELECT * FROM referrals"):
        events = _rows(db, "SELECT seq, status, applied FROM referral_events WHERE side = ? AND peer_node_id = ?"
                           " AND referral_id = ? ORDER BY seq", r["side"], r["peer_node_id"], r["id"])
        assert [e["seq"] for e in events] == list(range(1, r["last_seq"] + 1)) and all(e["applied"] for e in events)
        idle = "delivered" if r["side"] == "sender" else "received"
        assert r["state"] == (events[-1]["status"] if events else idle)
        assert json.loads(r["offer"])["referral_id"] == r["id"]
        held = "outbox" if r["side"] == "sender" else "inbox"
        assert _rows(db, f"SELECT 1 FROM {held} WHERE envelope_id = ?", r["envelope_id"])
    # Nothing is left to deliver or to mail; every receipt verifies, theirs and ours.
    assert not _rows(db, "SELECT seq FROM outbox WHERE state != 'delivered'")
    assert not _rows(db, "SELECT id FROM mail_queue WHERE sent_at IS NULL")
    ours = our_keys(built.config)
    checks = evidence.verify_receipts(db, ours.node_id)
    assert checks and all(c.ok for c in checks), [c for c in checks if not c.ok]
    assert len(checks) == built.counts["outbox"]
    for row in _rows(db, "SELECT envelope_id, sha256, sender, receipt FROM inbox"):
        verify_receipt(row["receipt"], keys=ours, envelope_id=row["envelope_id"], envelope_sha256=row["sha256"],
                       sender=row["sender"])
    assert len(built.sample_deals) == 100 and len(set(built.sample_deals)) == 100
    db.close()


def our_keys(config: Config) -> PeerKeys:
    """The node's keys as a peer pins them: from the discovery document it serves."""
    db = Database(config.database_path)
    try:
        node = Node(config, KeyStore.load(config.keys_dir, None), db)
        return verify_discovery(node.discovery, expected_node_id=node.me)[1]
    finally:
        db.close_sync()


async def test_the_real_node_opens_it_and_serves_the_console_and_api(built: Built) -> None:
    running = RunningNode("bench", built.config, built.admin_token)
    await running.start()
    try:
        listed = await running.api("GET", "/api/v1/referrals")
        assert len(listed["referrals"]) == 100
        one = await running.api("GET", f"/api/v1/referrals/{listed['referrals'][0]['local_id']}")
        assert one["referral"]["local_id"] == listed["referrals"][0]["local_id"]
        for deal_id in built.sample_deals[:10]:
            assert (await running.api("GET", f"/api/v1/deals/{deal_id}"))["deal"]["id"] == deal_id
        verified = await running.api("POST", "/api/v1/receipts/verify", {})
        assert verified["invalid"] == [] and verified["valid"] == built.counts["outbox"]
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(built.password_link) as resp:
                csrf = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
                assert csrf
            form = {"csrf": csrf.group(1), "password": PASSWORD, "password_again": PASSWORD}
            async with http.post(built.password_link, data=form) as resp:
                assert resp.status == 200 and str(resp.url) == running.url + "/"
                assert "Good to see you, Sam Okafor" in await resp.text()
    finally:
        await running.close()
