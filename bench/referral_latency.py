"""End-to-end referral latency between two real nodes, against one loopback HTTP exchange.

Two nodes run as OS processes on 127.0.0.1, each with its own data folder, keys and
SQLite file. They connect by the invitation handshake over the admin API (POST
/api/v1/invitations at the receiver, POST /api/v1/connections at the sender, wait until
both say active). Then N referrals are sent one at a time through the sender's admin API;
each is timed from just before POST /api/v1/referrals until GET /api/v1/referrals/{id}
says "delivered", i.e. the sender has the receiver's signed receipt stored. The GET is
polled every --poll-ms, so a figure includes up to one poll interval (plus one GET).

Reference, in the same run and interleaved with the referrals: the round-trip time of a
bare GET of the receiving node's discovery document (/.well-known/refnode), timed the
same way from the same client.

    python bench/referral_latency.py [--referrals 200] [--poll-ms 2]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from nodeproc import make_node, node_proc, percentile, serve_command

CONSENT = {
    "contact_refs": ["c1"],
    "consented_at": "2026-11-20T10:00:00Z",
    "method": "verbal",
    "disclosure_version": "privacy-2026-07",
    "disclosure_sha256": "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg",
    "recorded_by": {"name": "Ava Agent", "email": "ava@agency.example"},
}


def referral_body(connection_id: str, i: int) -> dict[str, Any]:
    """The body tests/node/test_two_nodes.py sends, with a unique referral id."""
    return {
        "connection_id": connection_id,
        "referral_id": f"rfl_lat_{i:06d}",
        "referral_type": "mortgage",
        "deal": {"title": "Purchase at 12 Harbour St", "amount": "650000.00", "currency": "AUD"},
        "contacts": [
            {"ref": "c1", "first_name": "Jo", "last_name": "Citizen", "email": "jo@example.com"}
        ],
        "shared_fields": [
            "deal.title",
            "deal.amount",
            "contacts.first_name",
            "contacts.last_name",
            "contacts.email",
        ],
        "referring_agent": {"name": "Ava Agent", "email": "ava@agency.example"},
        "message": "Pre-approved elsewhere; wants a better rate.",
        "consent": CONSENT,
    }


class Api:
    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self.session, self.url, self.headers = session, url, {"Authorization": f"Bearer {token}"}

    async def __call__(self, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        async with self.session.request(
            method, self.url + path, json=body, headers=self.headers
        ) as response:
            data = await response.json()
            if response.status != expect:
                raise RuntimeError(
                    f"{method} {path} -> {response.status}, expected {expect}: {data}"
                )
            return data


async def measure(
    args: argparse.Namespace,
    sender_url: str,
    sender_token: str,
    receiver_url: str,
    receiver_token: str,
) -> dict[str, Any]:
    poll_s = args.poll_ms / 1000
    async with aiohttp.ClientSession() as session:
        sender = Api(session, sender_url, sender_token)
        receiver = Api(session, receiver_url, receiver_token)

        started = time.perf_counter()
        invite = await receiver(
            "POST", "/api/v1/invitations", {"name": "Agency", "direction": "receive"}, expect=201
        )
        result = await sender(
            "POST",
            "/api/v1/connections",
            {"referral_url": invite["referral_url"], "referral_key": invite["referral_key"]},
            expect=202,
        )
        cid = result["connection"]["id"]
        deadline = time.monotonic() + 30
        while True:
            a = (await sender("GET", f"/api/v1/connections/{cid}"))["connection"]["state"]
            # The receiver records the connection only once the request reaches it.
            listed = (await receiver("GET", "/api/v1/connections"))["connections"]
            b = next((c["state"] for c in listed if c["id"] == cid), "not yet")
            if (a, b) == ("active", "active"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"handshake did not finish: sender {a}, receiver {b}")
            await asyncio.sleep(poll_s)
        handshake_s = time.perf_counter() - started

        async def refer(i: int) -> tuple[float, int]:
            t0 = time.perf_counter()
            sent = await sender("POST", "/api/v1/referrals", referral_body(cid, i), expect=202)
            local_id = sent["referral"]["local_id"]
            polls = 0
            while True:
                polls += 1
                state = (await sender("GET", f"/api/v1/referrals/{local_id}"))["referral"]["state"]
                if state == "delivered":
                    return time.perf_counter() - t0, polls
                if state == "failed" or time.perf_counter() - t0 > 30:
                    raise RuntimeError(f"referral {local_id} ended {state}")
                await asyncio.sleep(poll_s)

        async def discovery_rtt() -> float:
            t0 = time.perf_counter()
            async with session.get(receiver_url + "/.well-known/refnode") as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"discovery answered {response.status}")
            return time.perf_counter() - t0

        for i in range(args.warmup):
            await discovery_rtt()
            await refer(i)
        referral_s, reference_s, polls = [], [], []
        for i in range(args.warmup, args.warmup + args.referrals):
            reference_s.append(await discovery_rtt())
            elapsed, n = await refer(i)
            referral_s.append(elapsed)
            polls.append(n)

        check = await sender("POST", "/api/v1/receipts/verify")
        received = await receiver("GET", "/api/v1/referrals?side=receiver")
    return {
        "handshake_s": handshake_s,
        "referral_s": referral_s,
        "reference_s": reference_s,
        "polls": polls,
        "receipts": check,
        "received": len(received["referrals"]),
    }


def stats_line(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"  {label:<46} p50 {percentile(ms, 50):7.2f}  p90 {percentile(ms, 90):7.2f}  "
        f"p99 {percentile(ms, 99):7.2f}  max {max(ms):7.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description="End-to-end referral latency between two real nodes."
    )
    parser.add_argument("--referrals", "-n", type=int, default=200, help="timed referrals (N)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed referrals first")
    parser.add_argument(
        "--poll-ms", type=float, default=2.0, help="interval between GETs of the referral"
    )
    parser.add_argument("--node-log-level", default="info", help="REFNODE_LOG_LEVEL of both nodes")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-latency-", dir=args.workdir))
    try:
        sender_cfg, sender_token = make_node(work, "Agency")
        receiver_cfg, receiver_token = make_node(work, "Broker")
        env = {"REFNODE_LOG_LEVEL": args.node_log_level}
        _, how = serve_command(sender_cfg.config_path)
        with (
            node_proc(sender_cfg.config_path, sender_cfg.public_url, work / "agency.log", env),
            node_proc(receiver_cfg.config_path, receiver_cfg.public_url, work / "broker.log", env),
        ):
            out = asyncio.run(
                measure(
                    args,
                    sender_cfg.public_url,
                    sender_token,
                    receiver_cfg.public_url,
                    receiver_token,
                )
            )
    finally:
        if args.keep:
            print(f"  (kept {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)

    total = args.warmup + args.referrals
    problems = []
    if out["receipts"]["invalid"] or out["receipts"]["checked"] < total:
        problems.append(f"receipts: {out['receipts']}")
    if out["received"] != total:
        problems.append(f"receiver holds {out['received']} referrals, expected {total}")
    ref = out["reference_s"]
    lat = out["referral_s"]
    print(
        f"referral_latency: N={args.referrals} referrals one at a time (+{args.warmup} warm-up), two node "
        f"processes, node log level {args.node_log_level}; nodes run as: {how}"
    )
    print(f"  handshake (invitation -> both active): {out['handshake_s'] * 1000:.1f} ms")
    print(
        f"  poll interval {args.poll_ms:g} ms: each referral figure includes up to one poll interval plus one "
        f"GET (mean {sum(out['polls']) / len(out['polls']):.1f} GETs per referral)"
    )
    print(stats_line("referral (POST /referrals -> state delivered)", lat))
    print(stats_line("reference (GET receiver /.well-known/refnode)", ref))
    print(
        f"  receipts verified at the sender: {out['receipts']['checked']} checked, "
        f"{len(out['receipts']['invalid'])} invalid; receiver holds {out['received']} referrals"
    )
    for p in problems:
        print(f"  PROBLEM {p}")
    p50 = percentile(lat, 50) / percentile(ref, 50)
    p99 = percentile(lat, 99) / percentile(ref, 99)
    print(
        f"RESULT referral_latency: p50 {percentile(lat, 50) * 1000:.2f} ms = {p50:.1f} x reference "
        f"({percentile(ref, 50) * 1000:.2f} ms); p99 {percentile(lat, 99) * 1000:.2f} ms = {p99:.1f} x reference "
        f"({percentile(ref, 99) * 1000:.2f} ms)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
