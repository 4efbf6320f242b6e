"""One run of the suite: start the peer's inbox, run the checks in order, report."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

import aiohttp

from conformance import checks_handshake, checks_lifecycle, checks_negative, checks_referrals
from conformance.listener import Inbox
from conformance.peer import Peer
from conformance.report import Result, summary, write_junit
from conformance.session import Options, Session, Skip
from conformance.target import Mismatch, Target

#: The sections in the order they run: each needs what the ones before it set up.
SECTIONS = (checks_handshake, checks_referrals, checks_negative, checks_lifecycle)


async def run(options: Options, *, junit: Path | None = None, out: TextIO = sys.stdout) -> list[Result]:
    """Run every check against the node ``options`` names; print one line each."""
    started = time.monotonic()
    peer = Peer(name="refnode conformance suite", base_url="http://unset.invalid")
    async with aiohttp.ClientSession() as http:
        target = Target(http, options.url, peer.node_id, timeout_s=options.timeout_s)
        inbox = Inbox(peer, target)
        port = await inbox.start(options.listen_host, options.listen_port)
        host = "127.0.0.1" if options.listen_host in ("0.0.0.0", "::", "") else options.listen_host  # noqa: S104
        peer.base_url = options.public_url or f"http://{host}:{port}"
        session = Session(options, target, peer, inbox, out=lambda text: print(text, file=out, flush=True))
        session.out(f"refnode conformance: target {options.url}\n"
                    f"the suite's peer: node {peer.node_id} at {peer.base_url}\n")
        try:
            for section in SECTIONS:
                await section.run(session)
                if target.keys is None:  # nothing to check without a verified discovery document
                    break
            await session.check("every envelope from the target opens under the checks of 8.5", "8.5, 9.3",
                                lambda: _inbound(session))
        finally:
            await inbox.stop()
    seconds = time.monotonic() - started
    print(summary(session.results, seconds), file=out, flush=True)
    if junit is not None:
        write_junit(session.results, seconds, junit, target=options.url)
    return session.results


async def _inbound(s: Session) -> None:
    if s.inbox.problems:
        raise Mismatch("; ".join(s.inbox.problems[:5]))
    if not s.inbox.arrivals:
        raise Skip("the target sent nothing")
