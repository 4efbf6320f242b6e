"""A node database at the console benchmark's scale: a mortgage broker's year of work.

``build(data_dir, Scale())`` runs ``init_node``, then writes into the real schema, in one
transaction each:

- brokers (users), three workflows with their stages ("Home Loans", the largest and the
  first by name and by age; "Inbound referrals", where referrals received land, with its
  won and lost stages; "Refinance");
- the CRM in bulk, with direct SQL as the CRM's own functions write it: deals spread over
  a year and over stages, one or two contacts each, notes, and a few follow-ups
  (opportunities);
- peers, each with a signed discovery document, and an active connection each;
- referrals, through the node's own functions (``bench/console_referrals.py``): sent ones
  with their outbox row, the peer's signed receipt and its status updates; received ones
  filed as deals with their inbox row, our receipt and the updates we sent back.

Nothing is left for the node to do when it starts: every outbox item is delivered and
every queued mail is marked sent. The same for a given seed and ``now``, but for ids and keys.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from node.base.config import Config
from node.base.ids import new_id
from node.base.keystore import KeyStore
from node.cli.setup import init_node
from node.crm import store as crm
from node.crm.models import WorkflowIn
from node.federation.landing import DEFAULT_WORKFLOW
from node.storage.db import Database
from protocol.models import format_ts

FIRST = ("Olivia Noah Charlotte Oliver Amelia Jack Isla William Mia Henry Ava Leo Grace Lucas Chloe Thomas "
         "Zoe James Ella Ethan Priya Arjun Mei Wei Aisha Omar Sofia Mateo Hannah Liam").split()
LAST = ("Smith Jones Williams Brown Wilson Taylor Nguyen Johnson Martin White Anderson Walker Thompson Thomas "
        "Lee Harris Ryan Robinson Kelly King Nair Chen Patel Singh Rossi Murphy O'Brien Walsh Kaur Ali").split()
PLACES = (("Glebe", "NSW", "2037"), ("Pyrmont", "NSW", "2009"), ("Fitzroy", "VIC", "3065"),
          ("Carlton", "VIC", "3053"), ("New Farm", "QLD", "4005"), ("Glenelg", "SA", "5045"),
          ("Fremantle", "WA", "6160"), ("Battery Point", "TAS", "7004"), ("Braddon", "ACT", "2612"))
STREETS = "Wattle Harbour Jetty Banksia Ocean Church George King Victoria Mill".split()
PEERS = ("Harbour Realty", "Coastal Conveyancing", "Northside Property", "Bayview Insurance",
         "Granite Financial Planning", "Parkside Estate Agents", "Keystone Legal", "Riverbend Realty",
         "Summit Accounting", "Eastgate Property Group", "Lighthouse Conveyancing", "Meridian Realty")
WORKFLOWS: dict[str, tuple[list[str], dict[str, str]]] = {
    "Home Loans": (["New lead", "Contacted", "Fact find", "Application", "Approved", "Settled", "Lost"],
                   {"Settled": "won", "Lost": "lost"}),
    DEFAULT_WORKFLOW: (["New referral", "Contacted", "In progress", "Settled", "Not proceeding"],
                       {"Settled": "won", "Not proceeding": "lost"}),
    "Refinance": (["New lead", "Rate review", "Application", "Settled", "Lost"], {"Settled": "won", "Lost": "lost"}),
}
#: Of the local deals, the share in each workflow but the inbound one.
LOCAL_SPLIT = {"Home Loans": 0.85, "Refinance": 0.15}
#: Relative weight of each stage of a workflow, in order: most deals are early on.
STAGE_WEIGHTS = (30, 22, 16, 12, 9, 7, 4)
ORG = "Summit Mortgage Brokers"
ADMIN_EMAIL = "admin@summit.example"


@dataclass(frozen=True)
class Scale:
    deals: int = 100_000
    referrals: int = 10_000
    peers: int = 8
    brokers: int = 20
    days: int = 365
    #: Of the referrals, the share we sent (the rest we received).
    sent_share: float = 0.5
    opportunities_share: float = 0.01


@dataclass
class Built:
    config: Config
    admin_email: str
    admin_token: str
    password_link: str
    workflows: dict[str, str]
    #: Deals to open in the deal view: referred, received and plain ones, shuffled.
    sample_deals: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def build(data_dir: Path, scale: Scale, *, port: int, seed: int = 12, now: datetime | None = None,
          progress: Callable[[str], None] = lambda _: None, **settings: Any) -> Built:
    """Initialise a node in ``data_dir`` (which must not hold one) and fill it; ``settings``
    are more of its configuration, ``progress`` is told how far it got."""
    from console_referrals import write_referrals  # a sibling module: bench/ is on sys.path

    rng = random.Random(seed)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    config = Config(data_dir=data_dir, port=port, org_name=ORG, **settings)
    init = init_node(config, admin_email=ADMIN_EMAIL, admin_name="Sam Okafor")
    keys = KeyStore.load(config.keys_dir, None)
    built = Built(config, ADMIN_EMAIL, init.admin_token, init.password_link, {}, [])
    db = Database(config.database_path)
    try:
        started = time.perf_counter()
        people = db.run(lambda conn: _people_and_workflows(conn, built, scale, rng, now))
        local = scale.deals - round(scale.referrals * (1 - scale.sent_share))
        db.run(lambda conn: _crm(conn, built, people, local, scale, rng, now))
        built.timings["crm_s"] = time.perf_counter() - started
        progress(f"  CRM: {local} deals with their contacts and notes in {built.timings['crm_s']:.1f} s")
        started = time.perf_counter()
        write_referrals(db, config, keys, scale, rng, now, progress)
        built.timings["referrals_s"] = time.perf_counter() - started
        db.run(lambda conn: _settle(conn, built, rng, now))
    finally:
        db.close_sync()
    return built


def _people_and_workflows(conn: Any, built: Built, scale: Scale, rng: random.Random, now: datetime) -> list[str]:
    start = now - timedelta(days=scale.days + 30)
    admin = conn.execute("SELECT id FROM users WHERE email = ?", (ADMIN_EMAIL,)).fetchone()[0]
    brokers = []
    for i in range(scale.brokers):
        first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
        uid = new_id("usr", start)
        conn.execute("INSERT INTO users (id, email, name, role, active, created_at) VALUES (?, ?, ?, 'broker', 1, ?)",
                     (uid, f"{first}.{last}{i}@summit.example".lower().replace("'", ""), f"{first} {last}",
                      format_ts(start)))
        brokers.append(uid)
    for n, (name, (stages, outcomes)) in enumerate(WORKFLOWS.items()):
        workflow = crm.create_workflow(conn, WorkflowIn(name=name, owner_user_id=admin, stage_names=stages,
                                                        outcomes=outcomes), now=start + timedelta(minutes=n))
        built.workflows[name] = workflow.id
    return brokers


def _crm(conn: Any, built: Built, brokers: list[str], count: int, scale: Scale, rng: random.Random,
         now: datetime) -> None:
    """``count`` local deals, their contacts and notes, and some follow-ups, in bulk."""
    stages = {name: [r[0] for r in conn.execute("SELECT id FROM stages WHERE workflow_id = ? ORDER BY position",
                                                (wid,))] for name, wid in built.workflows.items()}
    first_day = now - timedelta(days=scale.days)
    moments = sorted(first_day + timedelta(seconds=rng.uniform(0, scale.days * 86400 - 3600)) for _ in range(count))
    deals, contacts, links, notes, opportunities = [], [], [], [], []
    names = list(LOCAL_SPLIT)
    for i, created in enumerate(moments):
        workflow = rng.choices(names, weights=[LOCAL_SPLIT[n] for n in names])[0]
        column = stages[workflow]
        stage = rng.choices(column, weights=STAGE_WEIGHTS[:len(column)])[0]
        owner = brokers[i % len(brokers)]
        deal_id, ts = new_id("deal", created), format_ts(created)
        updated = format_ts(min(now, created + timedelta(days=rng.uniform(0, 40))))
        suburb, region, postcode = rng.choice(PLACES)
        street = f"{rng.randint(1, 240)} {rng.choice(STREETS)} Street, {suburb}"
        kind = "refinance" if workflow == "Refinance" else rng.choice(("purchase", "purchase", "investment",
                                                                       "construction"))
        title = f"{'Refinance of' if kind == 'refinance' else 'Purchase at'} {street}"
        deals.append((deal_id, title, kind, f"{rng.randint(300, 1900) * 1000}.00", "AUD", built.workflows[workflow],
                      stage, owner, "", rng.choice(("Website", "Walk-in", "Repeat client", "Agent referral")),
                      f"{kind.title()} in {suburb}; {rng.randint(5, 30)}% deposit.", '["priority"]' if i % 9 == 0
                      else "[]", "{}", "local", None, None, ts, updated))
        people = 2 if rng.random() < 0.4 else 1
        for p in range(people):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            cid = new_id("ct", created)
            address = json.dumps({"country": "AU", "line1": street.split(",")[0], "locality": suburb,
                                  "postcode": postcode, "region": region}, sort_keys=True, separators=(",", ":"))
            contacts.append((cid, first, last, f"{first}.{last}{i}.{p}@example.com".lower().replace("'", ""),
                             f"+61 4{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)}", address,
                             f"{rng.randint(1955, 2002)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", "{}",
                             ts, ts))
            links.append((deal_id, cid, "primary" if p == 0 else "co-applicant", p))
        for n in range(rng.choice((1, 1, 2, 3))):
            at = format_ts(min(now, created + timedelta(hours=n * rng.uniform(1, 200))))
            notes.append((new_id("note", created), deal_id, None, owner, "user",
                          rng.choice(("Called the client; documents requested.", "Payslips and bank statements in.",
                                      "Valuation booked for next week.", "Client prefers a fixed rate for 3 years.",
                                      "Left a voicemail; try again tomorrow.")), at))
        if rng.random() < scale.opportunities_share:
            due = (now + timedelta(days=rng.randint(-20, 40))).date().isoformat()
            opportunities.append((new_id("opp", created), deal_id, None, rng.choice(("insurance", "conveyancing")),
                                  "future", "Client will look at this after settlement.", due, "open", None, None,
                                  owner, ts, ts, None))
    conn.executemany("INSERT INTO deals (id, title, deal_type, amount, currency, workflow_id, stage_id,"
                     " owner_user_id, folder, source, summary, labels, custom_fields, origin,"
                     " referral_peer_node_id, referral_id, created_at, updated_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", deals)
    conn.executemany("INSERT INTO contacts (id, first_name, last_name, email, phone, address, date_of_birth,"
                     " custom_fields, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", contacts)
    conn.executemany("INSERT INTO deal_contacts (deal_id, contact_id, role, position) VALUES (?, ?, ?, ?)", links)
    conn.executemany("INSERT INTO notes (id, deal_id, contact_id, author_user_id, kind, body, created_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?)", notes)
    conn.executemany("INSERT INTO opportunities (id, deal_id, contact_id, referral_type, outcome, reason,"
                     " follow_up_on, state, referral_local_id, deferred_referral_id, created_by, created_at,"
                     " updated_at, closed_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", opportunities)


def _settle(conn: Any, built: Built, rng: random.Random, now: datetime) -> None:
    """Mark queued mail sent (long ago, as far as the node knows), count what is there,
    and choose the deals the deal view opens."""
    conn.execute("UPDATE mail_queue SET sent_at = ?, sent_as = 'bench' WHERE sent_at IS NULL", (format_ts(now),))
    for table in ("users", "workflows", "stages", "deals", "contacts", "deal_contacts", "notes", "opportunities",
                  "peers", "connections", "referrals", "referral_events", "outbox", "inbox"):
        built.counts[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    sample = [r[0] for r in conn.execute("SELECT deal_id FROM referrals WHERE deal_id IS NOT NULL ORDER BY deal_id")]
    sample = rng.sample(sample, min(len(sample), 60))
    plain = [r[0] for r in conn.execute("SELECT id FROM deals WHERE origin = 'local' AND id NOT IN"
                                        " (SELECT deal_id FROM referrals WHERE deal_id IS NOT NULL) ORDER BY id")]
    built.sample_deals = sample + rng.sample(plain, min(len(plain), 40))
    rng.shuffle(built.sample_deals)
