"""What the browser tests share: real headless Chromium (Debian's ``chromium``) through
Playwright, a real SMTP server (``aiosmtpd``) on loopback that keeps every mail, axe-core
run in the page, and screenshots at desktop and phone width.

Screenshots go to ``screenshots/`` at the top of the repository (``REFNODE_SCREENSHOTS``
moves them); CI keeps that folder.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from playwright.async_api import Browser, Page, async_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("REFNODE_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("REFNODE_SCREENSHOTS", ROOT / "screenshots"))
AXE = Path(__file__).parent / "web" / "vendor" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct horse battery staple"  # noqa: S105 (a test password)
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


# --- mail ------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """Every message the test's SMTP server received."""

    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"

    async def wait_for(self, to: str, subject_part: str, within_s: float = 20.0) -> EmailMessage:
        """The first mail to ``to`` whose subject has ``subject_part``."""
        deadline = asyncio.get_running_loop().time() + within_s
        while True:
            for message in self.messages:
                if to.lower() in str(message["To"]).lower() and subject_part.lower() in str(message["Subject"]).lower():
                    return message
            if asyncio.get_running_loop().time() > deadline:
                seen = [(str(m["To"]), str(m["Subject"])) for m in self.messages]
                raise AssertionError(f"no mail to {to} about {subject_part!r}; got {seen}")
            await asyncio.sleep(0.1)


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def link_in(message: EmailMessage, pattern: str = r"https?://\S+") -> str:
    found = re.search(pattern, text_of(message))
    assert found, text_of(message)
    return found.group(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Any:
    box = Mailbox("127.0.0.1", _free_port())
    controller = Controller(box, hostname=box.host, port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def smtp_settings(box: Mailbox) -> dict[str, Any]:
    """Node settings that send mail to the test's SMTP server."""
    return {"smtp_host": box.host, "smtp_port": box.port, "smtp_security": "none"}


# --- pages -----------------------------------------------------------------------------


async def new_page(browser: Browser, *, phone: bool = False) -> Page:
    context = await browser.new_context(viewport=PHONE if phone else DESKTOP)
    return await context.new_page()


async def sign_in(page: Page, base_url: str, email_address: str, password: str = PASSWORD) -> None:
    await page.goto(base_url + "/login")
    await page.get_by_label("E-mail address").fill(email_address)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()
    assert "/login" not in page.url, await page.content()


async def choose_password(page: Page, link: str, password: str = PASSWORD) -> None:
    """Open a set-password link and choose ``password``; signs the user in."""
    await page.goto(link)
    await page.get_by_label("New password", exact=True).fill(password)
    await page.get_by_label("New password again").fill(password)
    await page.get_by_role("button", name="Save password and sign in").click()
    await page.wait_for_url(re.compile(r".*/$"))


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        # CSP forbids inline script on our pages: evaluate the library's text instead
        await page.evaluate(AXE.read_text(encoding="utf-8"))
    result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"] if v["impact"] in ("serious", "critical")
    ]


async def check_page(page: Page, name: str, *, phone_too: bool = True) -> None:
    """Assert axe-core finds nothing serious, and write the screenshots: ``name``-desktop
    and ``name``-phone (the same URL at phone width, in the same session)."""
    violations = await axe_violations(page)
    assert not violations, f"{name}: {violations}"
    await asyncio.to_thread(SHOTS.mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=True)
    if phone_too:
        size = page.viewport_size
        await page.set_viewport_size(PHONE)
        violations = await axe_violations(page)
        assert not violations, f"{name} (phone): {violations}"
        await page.screenshot(path=str(SHOTS / f"{name}-phone.png"), full_page=True)
        if size:
            await page.set_viewport_size(size)
