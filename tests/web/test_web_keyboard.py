"""The main flows by keyboard alone, in real Chromium between two real nodes: sign in;
refer a deal (the form, the preview, the confirmation, send); and, at the other node,
accept the referral and move its deal. Only Tab, Shift+Tab, Enter, Space, arrow keys
and typing: no click. Each control reached shows where the focus is."""

from __future__ import annotations

import re

from refer_kit import DISCLOSURE, client_deal, referral_rows, setup_pair, signed_in, wait_for
from web_kit import PASSWORD, new_page

# The focused element's accessible name as a person reads it (its label, else its text),
# and whether the focus can be seen (an outline the style sheet has not taken away).
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return {name: "", outline: false};
  const label = el.labels && el.labels.length ? el.labels[0].innerText : "";
  const name = (label || el.getAttribute("aria-label") || el.innerText || el.value || "").trim();
  const style = getComputedStyle(el);
  return {name, outline: style.outlineStyle !== "none" && style.outlineWidth !== "0px"};
}"""


async def tab_to(page, name: str, *, back: bool = False, limit: int = 150) -> None:
    """Press Tab (or Shift+Tab) until the focus is on the control whose name starts with ``name``."""
    passed = []
    for _ in range(limit):
        await page.keyboard.press("Shift+Tab" if back else "Tab")
        focused = await page.evaluate(FOCUSED)
        if focused["name"].startswith(name):
            assert focused["outline"], f"the focus on {name!r} cannot be seen"
            return
        passed.append(focused["name"][:40])
    raise AssertionError(f"Tab never reached {name!r}; it passed {passed}")


async def keyboard_sign_in(browser, base_url: str, email: str):
    page = await new_page(browser)
    await page.goto(base_url + "/login")
    await tab_to(page, "E-mail address")
    await page.keyboard.type(email)
    await tab_to(page, "Password")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")  # submits the form
    await page.wait_for_url(re.compile(r".*/$"))
    return page


async def test_sign_in_refer_and_accept_by_keyboard_alone(node_factory, browser, smtp) -> None:
    pair = await setup_pair(node_factory, smtp)
    a, b = pair.a, pair.b
    deal_id, _ = await client_deal(a, pair.workflow, pair.bea["id"])
    for person in (pair.bea, pair.owen):  # each chooses a password from their link, then signs out
        setup = await signed_in(browser, person)
        await setup.context.close()

    # sign in
    bea = await keyboard_sign_in(browser, a.url, "bea@acme.example")
    assert await bea.get_by_role("heading", level=1).inner_text() == "Good to see you, Bea Broker"

    # refer: the deal page's link, the form, the preview, the confirmation
    await bea.goto(f"{a.url}/deals/{deal_id}")
    await tab_to(bea, "Refer this deal")
    await bea.keyboard.press("Enter")
    await bea.wait_for_url(re.compile(r".*/refer$"))
    for field in ("First name", "E-mail address"):
        await tab_to(bea, field)
        await bea.keyboard.press("Space")
    await tab_to(bea, "Message to Harbour Realty")
    await bea.keyboard.type("Please call Jo after 5pm.")
    await tab_to(bea, "Jo Citizen consented to this referral")
    await bea.keyboard.press("Space")
    await tab_to(bea, "Verbal (in person or by phone)")  # the radio group: arrows move the choice
    await bea.keyboard.press("ArrowDown")
    assert await bea.get_by_label("Written (signed)").is_checked()
    await bea.keyboard.press("ArrowUp")
    assert await bea.get_by_label("Verbal (in person or by phone)").is_checked()
    await tab_to(bea, "Privacy disclosure version")
    await bea.keyboard.type("privacy-2026-07")
    await tab_to(bea, "Privacy disclosure text")
    await bea.keyboard.type(DISCLOSURE)
    await tab_to(bea, "Preview what will be sent")
    await bea.keyboard.press("Enter")
    await bea.wait_for_url(re.compile(r".*/refer/preview$"))
    travels = await bea.inner_text("section.travels")
    assert "First name\nJo" in travels and "jo@example.com" in travels and "Citizen" not in travels, travels
    await tab_to(bea, "Continue")
    await bea.keyboard.press("Space")  # a button answers Space as well as Enter
    await bea.wait_for_url(re.compile(r".*/refer/confirm$"))
    await tab_to(bea, "Send the referral")
    await bea.keyboard.press("Enter")
    await bea.wait_for_url(re.compile(r".*/referrals/ref_[^/]+$"))
    local_id = bea.url.rsplit("/", 1)[1]

    async def landed() -> bool:
        return len(await referral_rows(b, "receiver")) == 1

    await wait_for(landed)

    # accept, at Harbour: from Home's "Referrals waiting", then move the deal a stage
    owen = await keyboard_sign_in(browser, b.url, "owen@harbour.example")
    await tab_to(owen, "Purchase at 12 Harbour St")
    await owen.keyboard.press("Enter")
    await owen.wait_for_url(re.compile(r".*/referrals/[^/]+$"))
    await tab_to(owen, "Accept the referral")
    await owen.keyboard.press("Enter")
    await owen.get_by_text("Accepted. Acme Mortgages is told.").wait_for()
    await tab_to(owen, "Move the deal to stage")
    await owen.keyboard.press("ArrowDown")  # New referral -> Contacted
    await tab_to(owen, "Move")
    await owen.keyboard.press("Enter")
    await owen.get_by_text("Moved to stage Contacted.").wait_for()

    async def told() -> bool:
        return (await a.api("GET", f"/api/v1/referrals/{local_id}"))["referral"]["state"] in ("accepted",
                                                                                               "in-progress")

    await wait_for(told)
