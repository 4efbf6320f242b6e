"""README's quick start opens the consoles: ``examples/two_orgs/run.py --keep-serving`` leaves
both nodes serving and prints, per organisation, the console and the admin's one-time
link; a person follows both links in one browser and is signed in to both consoles."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from web_kit import browser, check_page, choose_password, new_page  # noqa: F401 (browser: a fixture)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ORGS = {"Harbour Realty": ("Ava Thompson", "ava@harbour-realty.example"),
        "Summit Mortgage Brokers": ("Sam Okafor", "sam@summit-mortgages.example")}


async def _read_until(stream: asyncio.StreamReader, marker: str, within_s: float) -> str:
    """The output up to and including the line with ``marker``."""
    text = ""
    try:
        async with asyncio.timeout(within_s):
            while marker not in text and (line := await stream.readline()):
                text += line.decode()
    except TimeoutError:
        pass
    assert marker in text, f"no {marker!r} in the example's output:\n{text}"
    return text


def _consoles(transcript: str) -> dict[str, dict[str, str]]:
    """Per organisation, what the example printed: console, who signs in, link."""
    block = transcript.split("Both nodes keep serving.", 1)[1]
    found = {}
    for name in ORGS:
        part = block.split(f"  {name} (", 1)[1]
        found[name] = {key: re.search(rf"{key}:\s+(.+)", part).group(1).strip()  # type: ignore[union-attr]
                       for key in ("console", "sign in", "link")}
    return found


async def test_keep_serving_prints_a_sign_in_link_per_console_and_both_work_in_one_browser(tmp_path, browser) -> None:  # noqa: F811
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFNODE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "examples/two_orgs/run.py"), "--keep-serving", "--data-dir", str(tmp_path),
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    try:
        transcript = await _read_until(proc.stdout, "Press Ctrl-C to stop both nodes.", within_s=180)
        assert "OK: status update arrived." in transcript
        consoles = _consoles(transcript)
        harbour, summit = consoles["Harbour Realty"], consoles["Summit Mortgage Brokers"]
        for name, (person, address) in ORGS.items():
            assert consoles[name]["sign in"] == f"{person} <{address}>, admin"
            assert consoles[name]["link"].startswith(consoles[name]["console"] + "set-password/rnp_")
        # Two host names: one browser keeps a session cookie for each console.
        assert harbour["console"].startswith("http://127.0.0.1:") and summit["console"].startswith("http://localhost:")

        # Each printed link serves the page to choose a password (and stays unused).
        async with aiohttp.ClientSession() as http:
            for console in (harbour, summit):
                async with http.get(console["link"], headers={"Accept": "text/html"}) as resp:
                    assert resp.status == 200 and "Choose your password" in await resp.text()

        # A person follows both links in one browser, then finds both consoles signed in.
        page = await new_page(browser)
        for console, (person, _) in ((harbour, ORGS["Harbour Realty"]), (summit, ORGS["Summit Mortgage Brokers"])):
            await choose_password(page, console["link"])
            assert await page.get_by_role("heading", level=1).inner_text() == f"Good to see you, {person}"
        for console, org, (person, _), shot in ((harbour, "Harbour Realty", ORGS["Harbour Realty"], "harbour"),
                                                (summit, "Summit Mortgage Brokers", ORGS["Summit Mortgage Brokers"],
                                                 "summit")):
            await page.goto(console["console"])
            assert "/login" not in page.url
            assert await page.get_by_role("heading", level=1).inner_text() == f"Good to see you, {person}"
            assert await page.locator(".brand .org").inner_text() == org
            if org == "Summit Mortgage Brokers":  # the second referral waits for the console user
                waiting = page.get_by_role("region", name=re.compile("Referrals waiting for you"))
                assert "Refinance of 3 Jetty Road, Glenelg" in await waiting.inner_text()
            await check_page(page, f"quickstart-{shot}-home", phone_too=False)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rest = (await asyncio.wait_for(proc.stdout.read(), 60)).decode()
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0, rest
    assert rest.count("node stopped.") == 2, rest
    for folder in ("harbour", "summit"):
        assert (tmp_path / f"{folder}.log").read_text().rstrip().endswith("refnode: stopped")
