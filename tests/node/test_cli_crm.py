"""The CRM and referring commands of ``refnode`` (node/cli/: workflows, contacts, deals,
referring, reports, csv_files, and connections for its settings), run as real processes
against two served nodes: a workflow, a contact and a deal; the deal referred with the
client's consent and seen arriving at the other node; a deferred referral; opportunities;
the report as CSV; connection settings; CSV export and import between the nodes."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_cli import Servers, cli_env, init, ok, refnode, wait_json

from node.federation.reporting import CSV_COLUMNS

pytestmark = pytest.mark.slow


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Servers]:
    running = Servers(tmp_path)
    yield running
    running.close()


def js(*args: str, cwd: Path) -> Any:
    return json.loads(ok(*args, "--json", cwd=cwd))


def test_a_deal_from_the_crm_is_referred_reported_and_moved_as_csv(tmp_path: Path, nodes: Servers) -> None:
    agency_port, _ = init(tmp_path, "agency", "Harbour Realty")
    broker_port, _ = init(tmp_path, "broker", "Summit Mortgage Brokers")
    nodes.start("agency", agency_port)
    nodes.start("broker", broker_port)
    invite = js("--data-dir", "broker", "invite", "create", "Harbour Realty", cwd=tmp_path)
    ok("--data-dir", "agency", "connect", invite["referral_url"], invite["referral_key"], cwd=tmp_path)
    connection = js("--data-dir", "agency", "connections", "list", cwd=tmp_path)["connections"][0]
    assert connection["state"] == "active"
    con = connection["id"]

    def agency(*args: str) -> str:
        return ok("--data-dir", "agency", *args, cwd=tmp_path)

    def agency_json(*args: str) -> Any:
        return js("--data-dir", "agency", *args, cwd=tmp_path)

    # A workflow, owned by the admin (by email), and a stage added at the end.
    workflow = agency_json("workflows", "create", "Home loans", "--owner-email", "admin@agency.example",
                           "--stages", "New, Contacted,Settled", "--won-stage", "Settled")["workflow"]
    wid = workflow["id"]
    assert [s["name"] for s in workflow["stages"]] == ["New", "Contacted", "Settled"]
    assert [s["outcome"] for s in workflow["stages"]] == [None, None, "won"]
    users = agency_json("users", "list")["users"]
    assert workflow["owner_user_id"] == next(u["id"] for u in users if u["email"] == "admin@agency.example")
    shown = agency("workflows", "add-stage", wid, "Lost", "--outcome", "lost")
    assert re.search(r"^3\s+\S+\s+Lost\s+lost$", shown, re.MULTILINE), shown
    assert re.search(r"^2\s+\S+\s+Settled\s+won$", shown, re.MULTILINE), shown
    stage = {s["name"]: s["id"] for s in agency_json("workflows", "show", wid)["workflow"]["stages"]}
    assert list(stage) == ["New", "Contacted", "Settled", "Lost"]
    assert re.search(rf"{wid}\s+Home loans\s+\S+\s+New > Contacted > Settled > Lost", agency("workflows", "list"))

    # A contact and a deal; the deal starts at the workflow's first stage.
    contact = agency_json("contacts", "add", "--first-name", "Jo", "--last-name", "Citizen", "--email",
                          "jo@example.com", "--dob", "1988-04-02")["contact"]
    cid = contact["id"]
    assert (contact["first_name"], contact["date_of_birth"]) == ("Jo", "1988-04-02")
    assert re.search(rf"{cid}\s+Jo Citizen\s+jo@example.com", agency("contacts", "list", "--q", "citizen"))
    assert agency_json("contacts", "list", "--q", "nobody-like-that")["contacts"] == []
    deal = agency_json("deals", "add", "--title", "Jo's first home", "--workflow-id", wid, "--owner-email",
                       "admin@agency.example", "--amount", "650000.00", "--currency", "AUD", "--contact-id", cid,
                       "--type", "home-loan")["deal"]
    did = deal["id"]
    assert deal["stage_id"] == stage["New"] and deal["owner_user_id"] == workflow["owner_user_id"]
    assert deal["contacts"] == [{"contact_id": cid, "role": "primary"}]
    assert re.search(rf"{did}\s+Jo's first home\s+Home loans / New\s+650000.00 AUD",
                     agency("deals", "list", "--workflow-id", wid))
    ok("--data-dir", "agency", "deals", "note", did, "Jo wants to settle before June.", cwd=tmp_path)

    # Refer it with consent, sharing only the title and the first name.
    (tmp_path / "disclosure.txt").write_text("We share your details with Summit so they can call you.\n")
    consent = ["--connection-id", con, "--consent-contact-id", cid, "--consent-method", "verbal",
               "--disclosure-version", "2026-01", "--disclosure-file", str(tmp_path / "disclosure.txt"),
               "--agent", "admin@agency.example"]
    out = agency("deals", "refer", did, *consent, "--share", "deal.title", "--share", "contacts.first_name",
                 "--message", "Please call Jo this week", "--type", "mortgage")
    local_id = re.search(r"Referral (\S+) \(mortgage: Jo's first home\) is (sent|delivered)\.", out)
    assert local_id, out

    def arrived() -> Any:
        found = js("--data-dir", "broker", "referrals", "list", "--side", "receiver", cwd=tmp_path)["referrals"]
        return found[0] if found else None

    received = wait_json(arrived)
    offer = received["offer"]
    assert offer["deal"]["title"] == "Jo's first home" and "amount" not in offer["deal"]  # not shared
    assert [(c.get("first_name"), c.get("last_name"), c.get("email")) for c in offer["contacts"]] == [
        ("Jo", None, None)]
    assert offer["message"] == "Please call Jo this week" and offer["consent"]["method"] == "verbal"
    assert offer["consent"]["disclosure_version"] == "2026-01"
    assert re.search(r"receiver\s+received\s+mortgage\s+Jo's first home",
                     ok("--data-dir", "broker", "referrals", "list", "--side", "receiver", cwd=tmp_path))

    # A deferred referral waits for Settled; moving to Contacted does not send it; cancel it.
    deferred = agency_json("deals", "refer", did, *consent, "--when-stage-id", stage["Settled"],
                           "--again")["deferred"]  # the deal is live at Summit already
    assert deferred["state"] == "waiting" and deferred["stage_id"] == stage["Settled"]
    moved = agency_json("deals", "move", did, stage["Contacted"])["deal"]
    assert moved["stage_id"] == stage["Contacted"]
    assert re.search(rf"{deferred['id']}\s+{did}\s+{stage['Settled']}\s+{con}\s+waiting",
                     agency("deferred", "list", "--deal-id", did))
    assert "is cancelled." in agency("deferred", "cancel", deferred["id"])
    again = refnode("--data-dir", "agency", "deferred", "cancel", deferred["id"], cwd=tmp_path)
    assert again.returncode == 1
    assert f"refnode: error: invalid_transition: deferred referral {deferred['id']} was already cancelled" \
        in again.stderr
    shown = agency("deals", "show", did)
    assert re.search(r"stage:\s+Home loans / Contacted", shown), shown
    assert "Jo wants to settle before June." in shown and "Referred to Summit Mortgage Brokers" in shown

    # Opportunities: a future one on the follow-up list, closed; 'other' needs a reason.
    follow_up = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    opp = agency_json("opportunities", "add", "--deal-id", did, "--type", "insurance", "--outcome", "future",
                      "--follow-up", follow_up)["opportunity"]
    assert (opp["state"], opp["follow_up_on"]) == ("open", follow_up)
    assert re.search(rf"{opp['id']}\s+{did}\s+insurance\s+future\s+open\s+{follow_up}",
                     agency("opportunities", "list", "--due-by", follow_up))
    assert agency_json("opportunities", "list", "--due-by", "2000-01-01")["opportunities"] == []
    no_reason = refnode("--data-dir", "agency", "opportunities", "add", "--deal-id", did, "--type", "insurance",
                        "--outcome", "other", cwd=tmp_path)
    assert no_reason.returncode == 1 and "reason is required for 'other'" in no_reason.stderr
    assert "(field: reason)" in no_reason.stderr
    closed = agency_json("opportunities", "close", opp["id"], "--reason", "Jo has cover")["opportunity"]
    assert (closed["state"], closed["closed_reason"]) == ("closed", "Jo has cover")
    assert agency_json("opportunities", "list")["opportunities"] == []
    assert [o["id"] for o in agency_json("opportunities", "list", "--state", "closed")["opportunities"]] == [opp["id"]]

    # The report: as JSON, for people, and as CSV.
    report = agency_json("reports", "referrals", "--side", "sender")
    assert [(t["side"], t["sent"], t["in_progress"], t["awaiting"]) for t in report["totals"]] == [("sender", 1, 0, 1)]
    assert "per referring agent:" in agency("reports", "referrals")
    written = agency("reports", "referrals", "--side", "sender", "--csv", "report.csv")
    assert "Wrote the report to report.csv" in written
    with open(tmp_path / "report.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert {(r["side"], r["metric"], r["value"]) for r in rows if r["section"] == "totals"} >= {
        ("sender", "sent", "1"), ("sender", "won", "0")}

    # Connection settings: read, then narrow what may be shared; a refer beyond it is refused.
    settings = agency_json("connections", "settings", con)["settings"]
    assert "contacts.email" in settings["outbound"]["allowed_fields"]
    settings["outbound"]["allowed_fields"] = ["deal.title", "contacts.first_name"]
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    put = agency_json("connections", "settings", con, "--file", "settings.json")["settings"]
    assert put["outbound"]["allowed_fields"] == ["deal.title", "contacts.first_name"]
    assert re.search(r"outbound.allowed_fields:\s+deal.title, contacts.first_name",
                     agency("connections", "settings", con))
    refused = refnode("--data-dir", "agency", "deals", "refer", did, *consent, "--share", "contacts.email",
                      cwd=tmp_path)
    assert refused.returncode == 1
    assert "refnode: error: field_not_allowed: this connection may not share contacts.email " \
           "(field: shared_fields)" in refused.stderr

    # An opportunity converted into a referral, within the narrowed settings.
    later = agency_json("opportunities", "add", "--deal-id", did, "--type", "insurance", "--outcome",
                        "not_raised")["opportunity"]
    converted = agency("opportunities", "convert", later["id"], *consent, "--again")
    assert f"Opportunity {later['id']} (insurance, not_raised) on deal {did} is converted." in converted
    assert re.search(r"Referral \S+ \(insurance: Jo's first home\) is (sent|delivered)\.", converted), converted
    both = wait_json(lambda: (found := js("--data-dir", "broker", "referrals", "list", "--side", "receiver",
                                         cwd=tmp_path)["referrals"]) and len(found) == 2 and found)
    assert sorted(r["referral_type"] for r in both) == ["insurance", "mortgage"]

    # CSV: export at the agency; importing the same ids again is refused row by row;
    # the broker imports the contacts, then the deals (workflow by name, owner by email).
    assert "Exported 1 contacts to contacts.csv." in agency("export", "contacts", "contacts.csv")
    assert "Exported 1 deals to deals.csv." in agency("export", "deals", "deals.csv")
    assert "Jo's first home" in (tmp_path / "deals.csv").read_text(encoding="utf-8")
    twice = refnode("--data-dir", "agency", "import", "contacts", "contacts.csv", cwd=tmp_path)
    assert twice.returncode == 1
    assert "refnode: error: invalid: nothing was imported" in twice.stderr
    assert re.search(r"\n  row 2, id: .+", twice.stderr), twice.stderr

    def broker(*args: str) -> str:
        return ok("--data-dir", "broker", *args, cwd=tmp_path)

    broker("users", "add", "admin@agency.example", "Agency Admin")
    broker("workflows", "create", "Home loans", "--owner-email", "admin@broker.example",
           "--stages", "New,Contacted,Settled,Lost")
    assert "Imported 1 contacts from contacts.csv." in broker("import", "contacts", "contacts.csv")
    assert "Imported 1 deals from deals.csv." in broker("import", "deals", "deals.csv")
    copy = js("--data-dir", "broker", "deals", "show", did, cwd=tmp_path)["deal"]
    assert (copy["title"], copy["amount"], copy["contacts"]) == ("Jo's first home", "650000.00",
                                                                  [{"contact_id": cid, "role": "primary"}])
    assert copy["stage_id"] != stage["Contacted"]  # the broker's own stage, found by name
    assert re.search(r"stage:\s+Home loans / Contacted", broker("deals", "show", did))


def test_bad_arguments_exit_2_and_refusals_exit_1(tmp_path: Path, nodes: Servers) -> None:
    port, _ = init(tmp_path, "agency", "Harbour Realty")
    consent = ["--connection-id", "con_x", "--consent-contact-id", "c1", "--disclosure-version", "1",
               "--disclosure-file", "d.txt"]
    telepathy = refnode("--data-dir", "agency", "deals", "refer", "d1", *consent, "--consent-method", "telepathy",
                        cwd=tmp_path)
    assert telepathy.returncode == 2 and "invalid choice: 'telepathy'" in telepathy.stderr
    no_consent = refnode("--data-dir", "agency", "deals", "refer", "d1", "--connection-id", "con_x", cwd=tmp_path)
    assert no_consent.returncode == 2 and "--consent-contact-id" in no_consent.stderr
    no_outcome = refnode("--data-dir", "agency", "opportunities", "add", "--deal-id", "d1", "--type", "x",
                         cwd=tmp_path)
    assert no_outcome.returncode == 2 and "--outcome" in no_outcome.stderr
    both = refnode("--data-dir", "agency", "reports", "referrals", "--side", "both", cwd=tmp_path)
    assert both.returncode == 2 and "invalid choice: 'both'" in both.stderr
    what = refnode("--data-dir", "agency", "export", "users", "u.csv", cwd=tmp_path)
    assert what.returncode == 2 and "invalid choice: 'users'" in what.stderr

    nodes.start("agency", port)
    nobody = refnode("--data-dir", "agency", "workflows", "create", "Home loans", "--owner-email",
                     "nobody@agency.example", "--stages", "New", cwd=tmp_path)
    assert nobody.returncode == 1
    assert "refnode: error: unknown_user: no user with email nobody@agency.example" in nobody.stderr
    gone = refnode("--data-dir", "agency", "deals", "show", "deal_nope", "--json", cwd=tmp_path)
    assert gone.returncode == 1
    assert json.loads(gone.stdout)["error"]["code"] == "not_found"
    assert "deal 'deal_nope' not found" in gone.stderr
    twice = refnode("--data-dir", "agency", "workflows", "create", "Pipeline", "--owner-email",
                    "admin@agency.example", "--stages", "New,new", cwd=tmp_path)
    assert twice.returncode == 1 and "stage name 'New' appears twice (field: stage_names)" in twice.stderr
    bad_date = refnode("--data-dir", "agency", "reports", "referrals", "--from", "yesterday", cwd=tmp_path)
    assert bad_date.returncode == 1
    assert "refnode: error: invalid: query parameter from: must be a date written YYYY-MM-DD (field: from)" in bad_date.stderr
    (tmp_path / "broken.csv").write_text("first_name,last_name,email\nJo,Citizen,not-an-email\n")
    broken = refnode("--data-dir", "agency", "import", "contacts", "broken.csv", cwd=tmp_path)
    assert broken.returncode == 1 and re.search(r"\n  row 2, email: .*email", broken.stderr), broken.stderr
    assert js("--data-dir", "agency", "contacts", "list", cwd=tmp_path)["contacts"] == []  # all or nothing
    # Many bad rows: the first hundred are shown, and how many more there are.
    (tmp_path / "many.csv").write_text("first_name,email\n" + "".join(f"P{i},bad{i}\n" for i in range(150)))
    many = refnode("--data-dir", "agency", "import", "contacts", "many.csv", cwd=tmp_path)
    assert many.returncode == 1 and "(and 149 more)" in many.stderr
    assert many.stderr.count("\n  row ") == 100 and "\n  ... 50 more problems not shown" in many.stderr
    # A file on standard input is streamed to the node as it is read.
    piped = subprocess.run([sys.executable, "-m", "node.cli", "--data-dir", "agency", "import", "contacts", "-"],
                           input="first_name\nJo\nAl\n", cwd=tmp_path, env=cli_env(), capture_output=True,
                           text=True, timeout=60, check=False)  # fmt: skip
    assert piped.returncode == 0 and "Imported 2 contacts from -." in piped.stdout, piped.stderr
