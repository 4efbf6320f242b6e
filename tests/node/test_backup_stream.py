"""A backup taken during a stream of 2,000 referrals, restored: the restored node starts,
its receipts verify, and what it sends again, which its peer already holds, creates no
duplicate there; what it had taken before the backup, it does not take twice.

Two nodes as real processes (``refnode serve``) on 127.0.0.1. The agency streams 2,000
referrals to the broker through its admin API; ``refnode backup`` runs (a process of its
own) while envelopes wait in the agency's outbox. Once everything is delivered the agency
is stopped (its disk "lost"), the backup restored into a new folder and served on the same
address: at the time of the backup some envelopes were still waiting, so the restored
node delivers them again, and the broker answers each with its first receipt."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from metrics_kit import metrics_token, parse, scrape, value
from procs import ProcNode
from test_crash import connect, wait
from test_two_nodes import referral_body

from node.base.config import load_config
from protocol.wire import INBOX_PATH, MEDIA_TYPE_JOSE_JSON

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STREAM = 2000


def refnode(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, stdin=subprocess.DEVNULL)


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def pending(node: ProcNode) -> int:
    return len(node.api("GET", "/api/v1/outbox?state=pending")[1]["outbox"])


def test_a_backup_taken_mid_stream_restores_without_duplicates(tmp_path):
    from procs import make_proc_node

    agency = make_proc_node(tmp_path, "Agency")
    broker = make_proc_node(tmp_path, "Broker")
    archive = tmp_path / "agency-backup.bin"
    secret = {"REFNODE_BACKUP_PASSPHRASE": "a long passphrase for the test"}
    try:
        agency.start(), broker.start()
        cid = connect(agency, broker)
        # Before the stream: the broker accepts three referrals, and the agency takes in
        # those status updates (envelopes the restored agency will be offered again).
        first = [agency.api("POST", "/api/v1/referrals", referral_body(cid, referral_id=f"rfl_pre{i}"))[1]
                 for i in range(3)]
        wait(lambda: all(agency.api("GET", f"/api/v1/referrals/{r['referral']['local_id']}")[1]["referral"]["state"]
                         == "delivered" for r in first))
        received = broker.api("GET", "/api/v1/referrals?side=receiver")[1]["referrals"]
        for r in received:
            assert broker.api("POST", f"/api/v1/referrals/{r['local_id']}/status", {"status": "accepted"})[0] == 200
        wait(lambda: all(agency.api("GET", f"/api/v1/referrals/{r['referral']['local_id']}")[1]["referral"]["state"]
                         == "accepted" for r in first))

        # The stream: 2,000 referrals through the agency's API, four at a time.
        acknowledged: list[str] = []
        lock = threading.Lock()

        def refer(i: int) -> None:
            status, body = agency.api("POST", "/api/v1/referrals", referral_body(cid, referral_id=f"rfl_s{i:04d}"),
                                      timeout_s=30)
            assert status == 202, body
            with lock:
                acknowledged.append(body["referral"]["id"])

        pool = ThreadPoolExecutor(4)
        futures = [pool.submit(refer, i) for i in range(STREAM)]
        # The backup, taken while envelopes wait in the outbox and more keep coming.
        wait(lambda: pending(agency) >= 20 and len(acknowledged) >= 200, timeout_s=120)
        started = time.monotonic()
        backup = refnode("--config", str(agency.config.config_path), "--json", "backup", str(archive), "--passphrase",
                         env=secret)
        took_s = time.monotonic() - started
        assert backup.returncode == 0, backup.stderr
        during = len(acknowledged)
        for future in futures:
            future.result()
        pool.shutdown()
        assert during < STREAM, "the backup was not taken during the stream"
        assert len(acknowledged) == STREAM

        def all_delivered() -> bool:
            return query(agency.config.database_path,
                         "SELECT count(*) FROM outbox WHERE state != 'delivered'")[0][0] == 0

        wait(all_delivered, timeout_s=240)
        at_broker = query(broker.config.database_path, "SELECT count(*) FROM referrals WHERE side = 'receiver'")[0][0]
        assert at_broker == STREAM + 3

        # The agency's disk is lost; its backup is restored into a new folder.
        agency.stop()
        target = tmp_path / "Agency-restored"
        restore = refnode("--json", "restore", str(archive), "--data-dir", str(target), env=secret)
        assert restore.returncode == 0, restore.stderr
        db = target / "node.db"
        resent = query(db, "SELECT count(*) FROM outbox WHERE state = 'pending'")[0][0]
        in_backup = query(db, "SELECT count(*) FROM referrals WHERE side = 'sender'")[0][0]
        print(f"backup took {took_s:.2f} s, with {during} of {STREAM} acknowledged; it holds {in_backup} referrals, "
              f"{resent} waiting to be delivered")
        assert resent > 0, "nothing was waiting at the time of the backup: the test shows nothing"
        b_token = metrics_token(broker.config.data_dir)
        duplicates_before = value(parse(scrape(broker.url, b_token)[1]), "refnode_inbox_envelopes_total",
                                  type="referral-offer", outcome="duplicate", code="none")

        restored = ProcNode("Agency", load_config(target / "refnode.toml", {}), agency.token,
                            tmp_path / "Agency-restored.log")
        restored.start()
        assert restored.url == agency.url  # the same node, at the same address
        try:
            wait(lambda: query(db, "SELECT count(*) FROM outbox WHERE state != 'delivered'")[0][0] == 0,
                 timeout_s=120)
            # No duplicates at the broker: each referral once, every envelope once.
            rows = query(broker.config.database_path,
                         "SELECT count(*), count(DISTINCT id) FROM referrals WHERE side = 'receiver'")[0]
            assert rows == (STREAM + 3, STREAM + 3)
            deals = query(broker.config.database_path,
                          "SELECT count(*), count(DISTINCT deal_id) FROM referrals WHERE side = 'receiver'")[0]
            assert deals == (STREAM + 3, STREAM + 3)
            inbox = query(broker.config.database_path,
                          "SELECT count(*), count(DISTINCT envelope_id) FROM inbox WHERE type LIKE 'referral-offer/%'")[0]
            assert inbox == (STREAM + 3, STREAM + 3)
            # What the restored node sent again, the broker recognised as what it holds.
            duplicates = value(parse(scrape(broker.url, b_token)[1]), "refnode_inbox_envelopes_total",
                               type="referral-offer", outcome="duplicate", code="none") - duplicates_before
            assert duplicates == resent
            # The restored node's receipts verify, offline, from its own folder.
            check = refnode("--data-dir", str(target), "--json", "receipts", "verify")
            assert check.returncode == 0, check.stderr
            verified = json.loads(check.stdout)
            outbox = query(db, "SELECT count(*) FROM outbox")[0][0]  # the offers and the handshake's
            assert verified["invalid"] == [] and verified["checked"] == outbox >= in_backup
            # What it took before the backup (the broker's status updates), offered again,
            # gets the receipt it gave then and changes nothing.
            statuses = query(broker.config.database_path,
                             "SELECT body, receipt FROM outbox WHERE type LIKE 'referral-status/%' AND state = 'delivered'")
            assert len(statuses) == 3
            events = query(db, "SELECT count(*) FROM referral_events")[0][0]
            inbox_rows = query(db, "SELECT count(*) FROM inbox")[0][0]
            for body, receipt in statuses:
                request = urllib.request.Request(restored.url + INBOX_PATH, data=body,  # noqa: S310
                                                 headers={"Content-Type": MEDIA_TYPE_JOSE_JSON})
                with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                    assert answer.status == 200 and answer.read() == receipt
            assert query(db, "SELECT count(*) FROM referral_events")[0][0] == events
            assert query(db, "SELECT count(*) FROM inbox")[0][0] == inbox_rows
        finally:
            restored.stop()
    finally:
        agency.stop(), broker.stop()
