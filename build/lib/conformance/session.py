"""What the checks share during one run: the target, the suite's peer and inbox, the
connection and referrals made so far, the results, and the way to ask the target's
admin for something (a hook script, or a person at the terminal)."""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from conformance import forge
from conformance.listener import Arrival, Inbox
from conformance.peer import Peer
from conformance.report import Result, line
from conformance.target import Answer, Mismatch, Target
from protocol.models import WireModel
from protocol.wire import MEDIA_TYPE_JOSE_JSON

#: A hook that exits with this status cannot do what was asked: the check is skipped.
HOOK_SKIP = 77
#: A person asked at the terminal gets at least this long.
PERSON_WAIT_S = 300.0
#: The referral key may come from this variable; a hook never sees it.
KEY_ENV = "REFNODE_CONFORMANCE_KEY"


class Skip(Exception):
    """The check cannot run against this target, for the reason given."""


@dataclass(frozen=True)
class Options:
    url: str
    key: str | None = None
    request_email: str | None = None
    expired_url: str | None = None
    expired_key: str | None = None
    #: An invitation of the target made with direction ``send`` (the target refers).
    one_way_url: str | None = None
    one_way_key: str | None = None
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    public_url: str | None = None
    hook: str | None = None
    wait_s: float = 60.0
    timeout_s: float = 15.0
    #: Ask at the terminal when there is no hook (only if stdin is one).
    interactive: bool = field(default_factory=lambda: sys.stdin.isatty())


@dataclass
class Session:
    options: Options
    target: Target
    peer: Peer
    inbox: Inbox
    results: list[Result] = field(default_factory=list)
    #: The connection made with the target, once it is, and its direction from our view.
    connection_id: str | None = None
    direction: str | None = None
    active: bool = False
    #: The referral we sent (its id), and the one the target sent us.
    sent_referral: str | None = None
    received_referral: str | None = None
    #: Where each result line goes as soon as it is known, and where requests to a person go.
    out: Callable[[str], None] = field(default=lambda text: print(text, flush=True))
    say: Callable[[str], None] = field(default=lambda text: print(text, file=sys.stderr, flush=True))

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC).replace(microsecond=0)

    async def check(self, name: str, section: str, body: Callable[[], Awaitable[Any]],
                    *, needs: str | None = None) -> bool:
        """Run one check and record it: it passes unless it raises :class:`Mismatch`
        (fail) or :class:`Skip`. ``needs`` skips it at once, for that reason."""
        start = time.monotonic()
        try:
            if needs is not None:
                raise Skip(needs)
            await body()
            outcome, detail = "pass", ""
        except Skip as exc:
            outcome, detail = "skip", str(exc)
        except Mismatch as exc:
            outcome, detail = "fail", str(exc)
        except (TimeoutError, OSError, aiohttp.ClientError) as exc:
            outcome, detail = "fail", f"no answer from the target: {type(exc).__name__} {exc}"
        except Exception as exc:  # an answer so far off that the check could not go on
            outcome, detail = "fail", f"the check could not finish: {type(exc).__name__}: {exc}"
        result = Result(name, section, outcome, detail, time.monotonic() - start)  # type: ignore[arg-type]
        self.results.append(result)
        self.out(line(result))
        return outcome == "pass"

    def envelope(self, message: WireModel | dict[str, Any] | bytes, message_type: str, **kw: Any) -> forge.Sent:
        assert self.target.keys is not None
        return forge.envelope(self.peer, self.target.keys, message, message_type, now=self.now(), **kw)

    async def send(self, message: WireModel | dict[str, Any] | bytes, message_type: str,
                   **kw: Any) -> tuple[forge.Sent, Answer]:
        sent = self.envelope(message, message_type, **kw)
        return sent, await self.target.post(sent.raw)

    async def deliver(self, message: WireModel | dict[str, Any], message_type: str, *,
                      disposition: str = "accepted", **kw: Any) -> forge.Sent:
        """Send and expect a verified receipt with ``disposition``."""
        sent, answer = await self.send(message, message_type, **kw)
        self.target.receipt(answer, sent, disposition=disposition)
        return sent

    async def refused(self, sent: forge.Sent, code: str, *, signed: bool | None,
                      content_type: str = MEDIA_TYPE_JOSE_JSON, me: str | None = None,
                      chunked: bool = False) -> None:
        answer = await self.target.post(sent.raw, content_type=content_type, chunked=chunked)
        self.target.refusal(answer, code, sent=sent, signed=signed, me=me)

    async def ask(self, action: str, what: str, wanted: Callable[[Arrival], bool],
                  env: dict[str, str]) -> Arrival:
        """Have the target's admin do ``action`` (a hook, or a person told ``what``), then
        wait for the envelope it makes the target send."""
        wait_s = self.options.wait_s
        already = self.inbox.arrivals_matching(wanted)
        if already is not None:
            return already
        if self.options.hook:
            status, output = await _run_hook(self.options.hook, action, env)
            if status == HOOK_SKIP:
                raise Skip(f"the hook cannot {action} (exit {HOOK_SKIP})")
            if status != 0:
                raise Mismatch(f"the hook failed for {action} (exit {status}): {output[-300:]}")
        elif self.options.interactive:
            wait_s = max(wait_s, PERSON_WAIT_S)
            self.say(f"\n>>> Please ask the target's admin to {what}.\n"
                     f"    Waiting up to {wait_s:.0f} s...\n")
        else:
            raise Skip(f"needs the target's admin to {what}: give --hook SCRIPT, or run at a terminal")
        arrival = await self.inbox.wait_for(wanted, wait_s)
        if arrival is None:
            raise Mismatch(f"nothing arrived within {wait_s:.0f} s after asking to {what}")
        return arrival


async def _run_hook(hook: str, action: str, env: dict[str, str]) -> tuple[int, str]:
    variables = {**{k: v for k, v in os.environ.items() if k != KEY_ENV}, "REFNODE_CONFORMANCE_ACTION": action,
                 **{f"REFNODE_CONFORMANCE_{k.upper()}": v for k, v in env.items()}}
    proc = await asyncio.create_subprocess_exec(
        *_split(hook), action, env=variables,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await proc.communicate()
    return int(proc.returncode or 0), output.decode("utf-8", "replace")


def _split(command: str) -> list[str]:
    parts = shlex.split(command)
    if len(parts) == 1 and Path(parts[0]).suffix == ".py":
        return [sys.executable, parts[0]]
    return parts

