"""``refnode conformance URL``: run the protocol conformance suite (:mod:`conformance`)
against any node, ours or another implementation's, from the outside.

URL is a referral URL (with ``--key``, the referral key), or with ``--request EMAIL`` a
node's base URL. The suite plays a peer on ``--listen HOST:PORT`` (the target must reach
it there, or at ``--public-url``), prints one line per check and exits 1 if any fails.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from node.cli.client import CliError
from node.cli.output import Command, Context, Group

KEY_ENV = "REFNODE_CONFORMANCE_KEY"  # conformance.session.KEY_ENV, which hooks never see


def cmd_conformance(ctx: Context) -> int:
    from conformance.run import run  # not loaded by every command
    from conformance.session import Options

    a = ctx.args
    host, _, port = a.listen.rpartition(":")
    if not host or not port.isdigit():
        raise CliError(f"--listen takes HOST:PORT, not {a.listen!r}", code="usage", exit_code=2)
    key = a.key or ctx.env.get(KEY_ENV)
    if a.request is None and not key:
        raise CliError(f"give the referral key with --key (or {KEY_ENV}), or use --request EMAIL",
                       code="usage", exit_code=2)
    if bool(a.expired_url) != bool(a.expired_key):
        raise CliError("--expired-url and --expired-key go together", code="usage", exit_code=2)
    if bool(a.one_way_url) != bool(a.one_way_key):
        raise CliError("--one-way-url and --one-way-key go together", code="usage", exit_code=2)
    options = Options(
        url=a.url, key=key, request_email=a.request, expired_url=a.expired_url, expired_key=a.expired_key,
        one_way_url=a.one_way_url, one_way_key=a.one_way_key,
        listen_host=host, listen_port=int(port), public_url=a.public_url, hook=a.hook,
        wait_s=a.wait, timeout_s=a.timeout,
        **({"interactive": False} if a.no_input else {}),
    )
    try:
        results = asyncio.run(run(options, junit=Path(a.junit) if a.junit else None))
    except SystemExit as exc:  # a referral URL or key that does not parse
        raise CliError(str(exc.code).removeprefix("refnode conformance: "), code="usage", exit_code=2) from None
    return 1 if any(r.outcome == "fail" for r in results) else 0


def add_commands(commands: Any, group: Group, command: Command) -> None:
    """Add ``conformance`` to the parser."""
    p = command(commands, "conformance", cmd_conformance,
                "check a node (any implementation) against the protocol, over HTTP")
    p.add_argument("url", metavar="URL", help="the target's referral URL, or with --request its base URL")
    p.add_argument("--key", help=f"the referral key that came with the URL (or set {KEY_ENV})")
    p.add_argument("--request", metavar="EMAIL",
                   help="connect by request to this active user of the target instead of by invitation")
    p.add_argument("--expired-url", metavar="URL", help="a second invitation of the target, already expired")
    p.add_argument("--expired-key", metavar="KEY", help="its referral key")
    p.add_argument("--one-way-url", metavar="URL",
                   help="another invitation of the target, made with direction send (for the direction check)")
    p.add_argument("--one-way-key", metavar="KEY", help="its referral key")
    p.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:0",
                   help="where the suite's own node listens (default 127.0.0.1 on a free port)")
    p.add_argument("--public-url", metavar="URL",
                   help="the suite's base URL as the target reaches it (default http://HOST:PORT)")
    p.add_argument("--hook", metavar="SCRIPT",
                   help="run 'SCRIPT ACTION' to have the target's admin act (accept-connection, "
                        "send-referral, update-referral, rotate-keys), with REFNODE_CONFORMANCE_* variables; "
                        "exit 77 to skip")
    p.add_argument("--no-input", action="store_true", help="never ask at the terminal; skip what needs the admin")
    p.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                   help="how long to wait for the target to send something (default 60; "
                        "a person asked at the terminal gets 300 at least)")
    p.add_argument("--timeout", type=float, default=15.0, metavar="SECONDS", help="per HTTP request (default 15)")
    p.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML to FILE")
