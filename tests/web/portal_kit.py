"""What the client portal's browser tests share: a local HTTP SMS gateway that speaks the
Twilio Messages API and records every request, a node set up with a deal and two
applicants, and small steps (sign in as a client, read a passcode)."""

from __future__ import annotations

import base64
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from web_kit import smtp_settings, text_of

ACCOUNT = "AC0123456789"
TOKEN = "gateway-token-for-tests"  # noqa: S105 (a test token)


@dataclass
class SmsGateway:
    """A Twilio-shaped gateway on 127.0.0.1: answers 201 and keeps what it got."""

    port: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", self._messages)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _messages(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.received.append({"account": request.match_info["account"], "auth": request.headers.get("Authorization"),
                              "content_type": request.content_type, **{k: str(v) for k, v in form.items()}})
        return web.json_response({"sid": f"SM{len(self.received):032d}", "status": "queued"}, status=201)

    def to(self, number: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m["To"] == number]


def expected_auth() -> str:
    return "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()


def node_settings(tmp_path: Path, smtp: Any, gateway: SmsGateway) -> dict[str, Any]:
    token = tmp_path / "sms-token"
    token.write_text(TOKEN)
    os.chmod(token, 0o600)
    return {**smtp_settings(smtp), "sms_gateway_url": gateway.url, "sms_account": ACCOUNT,
            "sms_from": "+61400000001", "sms_token_file": str(token)}


async def owner_id(node: Any) -> str:
    users = (await node.api("GET", "/api/v1/users"))["users"]
    return str(next(u["id"] for u in users if u["email"] == node.extra["admin_email"]))


async def deal_with_applicants(node: Any, title: str = "Hill family purchase",
                               people: tuple[tuple[str, str, str | None], ...] = (
                                   ("Ana", "ana@example.com", "+61 411 111 111"),
                                   ("Ben", "ben@example.com", "+61 422 222 222"))) -> dict[str, Any]:
    """A workflow (if none yet), a deal, and its contacts (first name, e-mail, mobile)."""
    workflows = (await node.api("GET", "/api/v1/workflows"))["workflows"]
    if not workflows:
        body = {"name": "Home loans", "owner_user_id": await owner_id(node),
                "stage_names": ["Lead", "Application", "Approved", "Settled"]}
        workflows = [(await node.api("POST", "/api/v1/workflows", body, expect=201))["workflow"]]
    wf = workflows[0]
    contacts = []
    for first, email, phone in people:
        body = {"first_name": first, "last_name": "Hill", "email": email, **({"phone": phone} if phone else {})}
        contacts.append((await node.api("POST", "/api/v1/contacts", body, expect=201))["contact"])
    deal = (await node.api("POST", "/api/v1/deals", {
        "title": title, "workflow_id": wf["id"], "stage_id": wf["stages"][0]["id"],
        "owner_user_id": await owner_id(node),
        "contacts": [{"contact_id": c["id"], "role": "primary" if i == 0 else "co-applicant"}
                     for i, c in enumerate(contacts)]}, expect=201))["deal"]
    return {"workflow": wf, "deal": deal, "contacts": contacts}


def passcode_in(text: str) -> str:
    found = re.search(r"passcode (?:is |for .*?: )?(\d{6})|Your passcode: (\d{6})", text)
    assert found, text
    return found.group(1) or found.group(2)


def passcode_of_mail(message: Any) -> str:
    return passcode_in(text_of(message))


async def client_sign_in(page: Any, base_url: str, email: str, code: str) -> None:
    await page.goto(base_url + "/client/sign-in")
    await page.get_by_label("E-mail address").fill(email)
    await page.get_by_label("Passcode").fill(code)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()


PDF = b"%PDF-1.4\n% a test document\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


async def fill_contact_details(page: Any, years_here: str) -> None:
    """Fill the fact find's contact page (Ana's details) as the client would."""
    await page.get_by_label("Mobile number").fill("0411 111 111")
    await page.get_by_label("E-mail address").fill("ana@example.com")
    await page.get_by_label("Street address", exact=True).fill("1 Harbour St")
    await page.get_by_label("Suburb or town", exact=True).fill("Sydney")
    await page.get_by_label("Postcode", exact=True).fill("2000")
    await page.get_by_label("Years at this address").fill(years_here)


def pdf(marker: str) -> bytes:
    """A small PDF with a marker in it that a test can look for."""
    return PDF.replace(b"a test document", marker.encode())


async def ready_to_share(node: Any, deal_id: str, *, disclosure: str = "We keep your details here.",
                         labels: tuple[str, ...] = ("Credit guide", "Privacy disclosure")) -> str:
    """What sharing needs, set through the node's own domain functions (the browser test
    does it through the pages): the admin's privacy disclosure, a flow of three sections,
    and the deal's labelled compliance documents (stored). Returns the flow's id. A test
    of what blocks sharing leaves out the disclosure (empty) or some ``labels``."""
    import hashlib

    from node.crm import store as crm
    from node.crm.models import DocumentIn
    from node.crm.parsing import parse
    from node.portal import settings as portal

    me = await owner_id(node)
    folder = node.config.documents_dir
    folder.mkdir(mode=0o700, exist_ok=True)
    docs = []
    for label in labels:
        data = pdf(label)
        sha = hashlib.sha256(data).hexdigest()
        (folder / sha).write_bytes(data)
        docs.append((label, sha, len(data)))

    def setup(conn: Any, ctx: Any) -> str:
        portal.save_settings(conn, portal.PortalSettings(me, True, True, disclosure,
                                                         dict(portal.DEFAULT_NOTIFY)), ctx.now)
        for label, sha, size in docs:
            crm.add_document(conn, parse(DocumentIn, {"deal_id": deal_id, "name": f"{label}.pdf", "label": label,
                                                      "size_bytes": size, "sha256": sha}),
                             now=ctx.now, content_type="application/pdf")
        found = portal.list_flows(conn, me)
        if found:
            return found[0].id
        return portal.save_flow(conn, me, loan_type="Purchase", name="Purchase basics", now=ctx.now,
                                sections={"personal": ["about"], "contact": ["reach"], "goals": ["goals"]})

    return str(await node.node.transact(setup))


async def share(node: Any, deal_id: str, contact_id: str, flow_id: str, *, see_others: bool,
                documents: list[str]) -> str:
    """Invite a contact as the admin would from the deal's portal page; the access id."""
    from node.portal import access

    me = await owner_id(node)

    def invite(conn: Any, ctx: Any) -> str:
        ctx.effects.mail = True
        return access.invite(conn, ctx.config, deal_id=deal_id, contact_id=contact_id, broker_user_id=me,
                             flow_id=flow_id, see_others=see_others, documents=documents, now=ctx.now).access_id

    return str(await node.node.transact(invite))
