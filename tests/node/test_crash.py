"""Kill -9 a node while a stream of referrals is in flight: nothing is lost, nothing is
applied twice, and every referral the sender acknowledged ends with a verified receipt."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from procs import ProcNode, alive, child_pids, make_proc_node
from test_two_nodes import referral_body

pytestmark = pytest.mark.slow

STREAM = 60


def connect(a: ProcNode, b: ProcNode) -> str:
    status, invite = b.api("POST", "/api/v1/invitations", {"name": a.name})
    assert status == 201, invite
    status, result = a.api("POST", "/api/v1/connections",
                           {"referral_url": invite["referral_url"], "referral_key": invite["referral_key"]})
    assert status == 202, result
    cid = result["connection"]["id"]
    wait(lambda: a.api("GET", f"/api/v1/connections/{cid}")[1]["connection"]["state"] == "active"
         and b.api("GET", f"/api/v1/connections/{cid}")[1]["connection"]["state"] == "active")
    return cid


def wait(predicate: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, KeyError):
            pass
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def send_stream(sender: ProcNode, cid: str, acknowledged: list[str], stop_at: int, start: int = 0) -> None:
    for i in range(start, stop_at):
        try:
            status, body = sender.api("POST", "/api/v1/referrals",
                                      referral_body(cid, referral_id=f"rfl_stream_{i:04d}"), timeout_s=5)
        except OSError:
            continue  # the sender was down: this one was never acknowledged
        if status == 202:
            acknowledged.append(body["referral"]["id"])


def assert_exactly_once(sender: ProcNode, receiver: ProcNode, acknowledged: list[str]) -> None:
    def all_delivered() -> bool:
        refs = sender.api("GET", "/api/v1/referrals?side=sender")[1]["referrals"]
        return len(refs) >= len(acknowledged) and all(r["state"] == "delivered" for r in refs)

    wait(all_delivered, timeout_s=90)
    sent = sender.api("GET", "/api/v1/referrals?side=sender")[1]["referrals"]
    received = receiver.api("GET", "/api/v1/referrals?side=receiver")[1]["referrals"]
    sent_ids = sorted(r["id"] for r in sent)
    received_ids = sorted(r["id"] for r in received)
    assert set(acknowledged) <= set(sent_ids)  # acknowledged means on disk
    assert received_ids == sent_ids  # every one arrived, none twice
    status, check = sender.api("POST", "/api/v1/receipts/verify")
    assert status == 200 and check["invalid"] == []
    offers = [i for i in sender.api("GET", "/api/v1/outbox?state=delivered")[1]["outbox"]
              if i["type"].startswith("referral-offer/")]
    assert len(offers) == len(sent_ids) and all(i["has_receipt"] for i in offers)


@contextmanager
def streaming_pair(tmp_path: Any, *, broker_fronts: int = 0
                   ) -> Iterator[tuple[ProcNode, ProcNode, str, list[str], threading.Thread]]:
    """Two connected node processes, with a stream of referrals being sent from the first;
    yields once a third of the stream is acknowledged. Both are stopped afterwards."""
    agency = make_proc_node(tmp_path, "Agency")
    broker = make_proc_node(tmp_path, "Broker", inbox_workers=broker_fronts)
    try:
        agency.start(), broker.start()
        cid = connect(agency, broker)
        acknowledged: list[str] = []
        sender = threading.Thread(target=send_stream, args=(agency, cid, acknowledged, STREAM))
        sender.start()
        wait(lambda: len(acknowledged) >= STREAM // 3)
        yield agency, broker, cid, acknowledged, sender
    finally:
        agency.stop(), broker.stop()


@pytest.mark.parametrize("fronts", [0, 2], ids=["one-process", "with-2-inbox-fronts"])
def test_receiver_killed_mid_stream(tmp_path, fronts):
    with streaming_pair(tmp_path, broker_fronts=fronts) as (agency, broker, _cid, acknowledged, sender):
        broker.kill9()
        time.sleep(1.0)
        broker.start()
        sender.join()
        assert len(acknowledged) == STREAM  # the sender stayed up: it acknowledged all
        assert_exactly_once(agency, broker, acknowledged)
        offers = agency.api("GET", "/api/v1/outbox?state=delivered")[1]["outbox"]
        assert any(i["attempts"] > 1 for i in offers), "the kill interrupted no delivery"


def test_sender_killed_mid_stream(tmp_path):
    with streaming_pair(tmp_path) as (agency, broker, cid, acknowledged, sender):
        agency.kill9()
        sender.join()
        # Some acknowledged referrals had not reached the broker when the sender died.
        arrived = len(broker.api("GET", "/api/v1/referrals?side=receiver")[1]["referrals"])
        print(f"acknowledged {len(acknowledged)}, at the broker when killed: {arrived}")
        agency.start()
        send_stream(agency, cid, acknowledged, STREAM + 10, start=STREAM)
        assert len(acknowledged) >= STREAM // 3 + 10
        assert_exactly_once(agency, broker, acknowledged)


def test_an_inbox_front_killed_mid_stream(tmp_path):
    """A front dies with requests in flight: their senders retry, the other front or its
    replacement takes them, and still every referral arrives exactly once."""
    with streaming_pair(tmp_path, broker_fronts=2) as (agency, broker, _cid, acknowledged, sender):
        assert broker.proc is not None
        victim = child_pids(broker.proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        sender.join()
        assert not alive(victim)
        assert len(acknowledged) == STREAM
        assert_exactly_once(agency, broker, acknowledged)
        # Replaced, half a second after it died.
        wait(lambda: len([p for p in child_pids(broker.proc.pid) if alive(p)]) == 2, timeout_s=10)
