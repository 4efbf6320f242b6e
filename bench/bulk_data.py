"""Fill a stopped node's database with a large CRM and referral history, straight into its
schema (the tables of ``node/storage/migrations``), in bulk: for the scale benchmarks.

What one call of :func:`fill` writes, for N (``--rows``):

- N contacts (names from lists of 200 first and 500 last names, so a name matches about
  one contact in 500; unique e-mails, phones, an address, a date of birth);
- N deals, one per referral below: the even ones local (a "Sales" workflow of six stages,
  owned by one of 20 brokers), the odd ones filed from a received referral (the
  "Inbound referrals" workflow a node makes for them, with the referral's note); each
  deal has its contact, a third of them a co-applicant too;
- N referrals: deal i was sent to a peer (sender side) when i is even and received from
  one when i is odd, spread over the given connections, in every state a referral
  reaches (delivered, accepted, in progress, won, lost, declined...), with the status
  updates that took it there (``referral_events``) and the offer as stored (the JSON of a
  real two-applicant offer, about 1.9 KB);
- the envelopes of those offers, as a node keeps them: the outbox row of each sent offer
  (delivered, with its receipt) and the inbox row of each received one (its bytes and
  receipt), of a real offer envelope's sizes (random bytes: nothing reads them here).
  ``envelopes=False`` leaves them out (a smaller file). Status updates' envelopes are
  not written.

Every row is written in creation order over ``days`` days, with ids made as the node makes
them (time-sortable, ``node.base.ids``), in one transaction per table with SQLite's
journal off (the file is scratch until it is complete), then the WAL is turned back on.

    python bench/bulk_data.py DATA_DIR --rows 1000000     # a node made with 'refnode init'
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from node.base.ids import _b32  # noqa: E402
from protocol.models import format_ts  # noqa: E402

FIRST = (
    "Olivia Noah Charlotte Oliver Amelia William Isla Jack Mia Henry Ava Leo Grace Lucas Chloe "
    "Thomas Sophie James Zoe Ethan Ella Harrison Ruby Mason Lily Hudson Evie Alexander Willow "
    "Charlie Harper Theodore Matilda Levi Sienna Archie Aria Hunter Isabella Max Emily Jacob "
    "Sadie Liam Frankie Harvey Hazel Samuel Georgia Benjamin Violet Elijah Ivy Isaac Maeve "
    "Arlo Audrey Sebastian Evelyn Louis Scarlett Hugo Lucy Finn Alice Xavier Eleanor Oscar "
    "Billie Jaxon Piper Ryder Layla Harry Hannah Luca Mila Mateo Poppy Carter Savannah Tommy "
    "Stella Beau Abigail Daniel Ellie Edward Bonnie George Addison Jasper Lola Joshua Annabelle "
    "Riley Eloise Cooper Frankie Patrick Elsie Felix Imogen Ezra Pippa Austin Quinn Joseph "
    "Rose Nate Clara Michael Penelope Milo Aurora Elliot Eva Jordan Nina Kai Heidi Jayden "
    "Lyla Flynn Margot Ryan Madison Nathan Summer Marcus Indie Zachary Thea Caleb Harriet "
    "Tyler Esther Adam Florence Aiden Maya Leon Sofia Toby Ayla Owen Iris Logan Elena "
    "Anthony Lucia Angus Luna Bodhi Naomi Ali Aisha Wei Mei Hiroshi Yuki Priya Arjun Raj "
    "Ananya Minh Linh Duc Thi Mohammed Fatima Omar Layla Ahmed Sara Dimitri Eleni Giorgos "
    "Sofia Marco Giulia Luca Chiara Sean Aoife Connor Siobhan Tane Aroha Wiremu Mere Jin "
    "Seo-yeon Min-jun Ji-woo"
).split()[:200]
LAST = (
    "Smith Jones Williams Brown Wilson Taylor Johnson White Martin Anderson Thompson Nguyen "
    "Thomas Walker Harris Lee Ryan Robinson Kelly King Davis Wright Evans Roberts Green Hall "
    "Wood Jackson Clarke Patel Khan Lewis James Phillips Mitchell Turner Campbell Moore "
    "Murphy Cooper Young Edwards Hill Scott Stewart Allen Baker Morris Ward Clark Wang Li "
    "Zhang Chen Liu Yang Huang Zhao Wu Zhou Xu Sun Ma Zhu Hu Guo He Lin Luo Gao Tran Le Pham "
    "Hoang Phan Vu Dang Bui Do Ho Ngo Duong Ly Singh Kumar Sharma Gupta Shah Mehta Reddy Rao "
    "Iyer Nair Das Bose Sen Ghosh Kaur Gill Sandhu Dhillon Grewal Sidhu Brar Ahmed Hassan Ali "
    "Hussein Ibrahim Mahmoud Mustafa Rahman Karim Aziz Haddad Khoury Nasser Saleh Papadopoulos "
    "Georgiou Nikolaou Ioannou Christou Kostas Rossi Russo Ferrari Esposito Bianchi Romano "
    "Colombo Ricci Marino Greco Bruno Gallo Conti DeLuca Costa Giordano Mancini Rizzo Lombardi "
    "Moretti Barbieri Fontana Santoro Mariani Rinaldi Caruso Ferrara Galli Martini Leone "
    "Longo Gentile Martinelli Vitale Lombardo Serra Coppola DeSantis DAngelo Marchetti "
    "Parisi Villa Conte Ferraro Ferri Fabbri Bianco Marini Grasso Valentini Messina Sala "
    "DeAngelis Gatti Pellegrini Palumbo Sanna Farina Rizzi Monti Cattaneo Morelli Amato "
    "Silvestri Mazza Testa Grassi Pellegrino Carbone Giuliani Benedetti Barone Rossetti "
    "Caputo Montanari Guerra Palmieri Bernardi Martino Fiore DeRosa Ferretti Bellini Basile "
    "Riva Donati Piras Vitali Battaglia Sartori Neri Costantini Milani Pagano Ruggiero Sorrentino "
    "DAmico Orlando Damico Negri OBrien Byrne Ryan OConnor ONeill Reilly Doyle McCarthy "
    "Gallagher Doherty Kennedy Lynch Murray Quinn Moore McLaughlin Carroll Connolly Daly "
    "Connell Wilson Dunne Brennan Burke Collins Campbell Clarke Johnston Hughes Farrell "
    "Fitzgerald Brown Martin Maguire Nolan Flynn Thompson Callaghan ODonnell Duffy Mahony "
    "Boyle Healy Shea White Sweeney Hayes Kavanagh Power McGrath Moran Brady Stewart Casey "
    "Foley Fitzpatrick Leary McDonnell MacMahon Donnelly Regan Donovan Burns Flanagan Mullan "
    "Barry Kane Robinson Cunningham Griffin Kenny Sheehan Ward Whelan Lyons Reid Graham "
    "Higgins Cullen Keane King Maher McKenna Bell Scott Hogan Keeffe Magee McNamara McDonald "
    "Hurley Nolan Ahern Coleman Cronin Delaney Egan Finn Gorman Hennessy Kearney Lowe Madden "
    "Malone Mooney Nash Noonan Phelan Quigley Rooney Shields Tierney Walsh Tanaka Suzuki "
    "Takahashi Watanabe Ito Yamamoto Nakamura Kobayashi Kato Yoshida Yamada Sasaki Yamaguchi "
    "Matsumoto Inoue Kimura Hayashi Shimizu Yamazaki Mori Abe Ikeda Hashimoto Ishikawa Ogawa "
    "Kim Park Choi Jung Kang Cho Yoon Jang Lim Han Oh Seo Shin Kwon Hwang Ahn Song Jeon Hong "
    "Te-Whare Ngata Parata Tawhiri Horomona Rangi Wiremu Herewini Tipene Pomare Mokaraka "
    "Kereama Tamihana Waaka Paewai Hakaraia Karaka Tuhoe Ruatapu Manihera Rakena Tautahi "
    "Hohaia Paki Tomoana Kawhia Tapsell Pohatu Maniapoto Raharuhi Tuhiwai Wihongi Poutama "
    "Apanui Kingi Hura Reweti Tuhoro"
).split()[:500]
SUBURBS = [("Glebe", "NSW", "2037"), ("Pyrmont", "NSW", "2009"), ("Carlton", "VIC", "3053"),
           ("Fitzroy", "VIC", "3065"), ("New Farm", "QLD", "4005"), ("Subiaco", "WA", "6008"),
           ("Norwood", "SA", "5067"), ("Battery Point", "TAS", "7004"), ("Braddon", "ACT", "2612"),
           ("Parap", "NT", "0820")]
STREETS = ["Harbour Street", "Wattle Crescent", "George Street", "Victoria Road", "Park Avenue",
           "Church Street", "High Street", "Station Street", "King Street", "Queen Street"]
SALES_STAGES = [("New", None), ("Qualified", None), ("Applied", None), ("Approved", None),
                ("Settled", "won"), ("Lost", "lost")]
INBOUND_STAGES = ["New referral", "Contacted", "In progress", "Settled"]  # node.federation.landing
SUMMARY = ("Two-bedroom apartment, contract exchanged, settlement in 42 days. Buyers hold a pre-approval "
           "elsewhere that expires before settlement and want a better rate.")
#: Sizes of a real two-applicant offer envelope as a node stores it (bench/inbox_throughput.py).
ENVELOPE_BYTES, INNER_BYTES, RECEIPT_BYTES = 4800, 2600, 460
#: How a referral ended up, by side: (state, the statuses of its timeline), in proportions.
SENDER_PATHS = [("delivered", []), ("accepted", ["accepted"]), ("in-progress", ["accepted", "in-progress"]),
                ("won", ["accepted", "in-progress", "won"]), ("lost", ["accepted", "in-progress", "lost"]),
                ("declined", ["declined"]), ("in-progress", ["accepted", "in-progress"]),
                ("won", ["accepted", "in-progress", "won"])]
RECEIVER_PATHS = [("received", []), *SENDER_PATHS[1:]]
BATCH = 20_000


class Ids:
    """Ids as ``node.base.ids.new_id`` makes them, for given times, many times faster."""

    def __init__(self) -> None:
        self._pool = b""

    def __call__(self, prefix: str, ms: int) -> str:
        if len(self._pool) < 10:
            self._pool = os.urandom(65536)
        random, self._pool = int.from_bytes(self._pool[:10], "big"), self._pool[10:]
        return f"{prefix}_{_b32(ms, random)}"


def _batches(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def fill(db_path: Path, *, rows: int, peers: list[tuple[str, str, str]], days: int = 730,
         envelopes: bool = True, log: Callable[[str], None] = print) -> dict[str, int]:
    """Write ``rows`` contacts, deals and referrals (and what goes with them, see the
    module's docstring) into the node database at ``db_path``, which must hold at least
    one admin (``refnode init``) and no serving process. ``peers`` are the connections the
    referrals go over: (connection id, peer node id, peer inbox URL), already stored.
    Returns the number of rows written per table."""
    if not peers:
        raise ValueError("referrals need at least one connection")
    started = time.perf_counter()
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")  # out of WAL, so that journal_mode=OFF takes
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")  # 1 GB: the indexes' pages stay in memory
    conn.execute("PRAGMA temp_store=MEMORY")
    end = datetime.now(UTC) - timedelta(hours=1)
    start_ms = int((end - timedelta(days=days)).timestamp() * 1000)
    step_ms = max(1, days * 86_400_000 // max(rows, 1))
    new_id = Ids()
    counts: dict[str, int] = {}

    def _at(i: int) -> tuple[int, str]:
        ms = start_ms + i * step_ms
        return ms, format_ts(datetime.fromtimestamp(ms / 1000, UTC))

    times = [_at(i) for i in range(rows)]
    at = times.__getitem__

    def write(table: str, sql: str, generated: Iterator[tuple[Any, ...]]) -> None:
        t0 = time.perf_counter()
        n = 0
        conn.execute("BEGIN")
        for batch in _batches(generated):
            conn.executemany(sql, batch)
            n += len(batch)
        conn.execute("COMMIT")
        counts[table] = counts.get(table, 0) + n
        log(f"    {table}: {n:,} rows in {time.perf_counter() - t0:.1f} s")

    admin = conn.execute("SELECT id FROM users WHERE role = 'admin' ORDER BY created_at LIMIT 1").fetchone()[0]
    _, now_ts = at(0)
    brokers = [new_id("usr", start_ms) for _ in range(20)]
    write("users", "INSERT INTO users (id, email, name, role, active, created_at) VALUES (?, ?, ?, 'broker', 1, ?)",
          ((uid, f"broker{k:02d}@bench.example", f"Broker {FIRST[k]} {LAST[k]}", now_ts)
           for k, uid in enumerate(brokers)))
    sales, inbound = new_id("wf", start_ms), new_id("wf", start_ms + 1)
    sales_stages = [new_id("stg", start_ms) for _ in SALES_STAGES]
    inbound_stages = [new_id("stg", start_ms + 1) for _ in INBOUND_STAGES]
    conn.execute("BEGIN")
    conn.execute("INSERT INTO workflows (id, name, owner_user_id, created_at) VALUES (?, 'Sales', ?, ?)",
                 (sales, admin, now_ts))
    conn.execute("INSERT INTO workflows (id, name, owner_user_id, created_at) VALUES (?, 'Inbound referrals', ?, ?)",
                 (inbound, admin, now_ts))
    conn.executemany("INSERT INTO stages (id, workflow_id, name, position, outcome) VALUES (?, ?, ?, ?, ?)",
                     [(sid, sales, name, k, outcome) for k, (sid, (name, outcome)) in
                      enumerate(zip(sales_stages, SALES_STAGES, strict=True))]
                     + [(sid, inbound, name, k, None) for k, (sid, name) in
                        enumerate(zip(inbound_stages, INBOUND_STAGES, strict=True))])
    conn.execute("COMMIT")

    contact_ids: list[str] = []

    def contacts() -> Iterator[tuple[Any, ...]]:
        for i in range(rows):
            ms, ts = at(i)
            first, last = FIRST[i % len(FIRST)], LAST[(i * 7 + i // len(FIRST)) % len(LAST)]
            suburb, region, postcode = SUBURBS[i % len(SUBURBS)]
            address = json.dumps({"country": "AU", "line1": f"{i % 300 + 1} {STREETS[i % len(STREETS)]}",
                                  "locality": suburb, "postcode": postcode, "region": region},
                                 separators=(",", ":"), sort_keys=True)
            cid = new_id("ct", ms)
            contact_ids.append(cid)
            yield (cid, first, last, f"{first}.{last}{i}@example.com".lower(),
                   f"+61 4{i % 100:02d} {i // 100 % 1000:03d} {i % 1000:03d}", address,
                   f"19{50 + i % 50}-{i % 12 + 1:02d}-{i % 28 + 1:02d}", ts, ts)

    write("contacts", "INSERT INTO contacts (id, first_name, last_name, email, phone, address, date_of_birth,"
          " custom_fields, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, '{}', ?, ?)", contacts())

    # Referral i goes with deal i: sent (even i, a local deal) or received (odd i).
    ref_ids = [new_id("rfl", at(i)[0]) for i in range(rows)]
    deal_ids: list[str] = []

    def deals() -> Iterator[tuple[Any, ...]]:
        for i in range(rows):
            ms, ts = at(i)
            received = i % 2 == 1
            peer = peers[i % len(peers)]
            did = new_id("deal", ms)
            deal_ids.append(did)
            if received:
                workflow, stage = inbound, inbound_stages[i // 2 % len(inbound_stages)]
                source, origin, ref_peer, ref_id = "Referral from a connection", "referral", peer[1], ref_ids[i]
            else:
                workflow, stage = sales, sales_stages[i // 2 % len(sales_stages)]
                source, origin, ref_peer, ref_id = "Website", "local", None, None
            labels = '["priority"]' if i % 10 == 0 else "[]"
            yield (did, f"Purchase at {i % 400 + 1} {STREETS[i % len(STREETS)]}, {SUBURBS[i % len(SUBURBS)][0]}",
                   "purchase", f"{400000 + (i % 997) * 1000}.00", "AUD", workflow, stage,
                   brokers[i % len(brokers)], str(2024 + i * 2 // rows), source, SUMMARY, labels, origin,
                   ref_peer, ref_id, ts, ts)

    write("deals", "INSERT INTO deals (id, title, deal_type, amount, currency, workflow_id, stage_id,"
          " owner_user_id, folder, source, summary, labels, custom_fields, origin, referral_peer_node_id,"
          " referral_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '{}', ?, ?, ?, ?, ?)",
          deals())

    def links() -> Iterator[tuple[Any, ...]]:
        for i, did in enumerate(deal_ids):
            yield did, contact_ids[i], "primary", 0
            if i % 3 == 0:
                yield did, contact_ids[(i + 1) % rows], "co-applicant", 1

    write("deal_contacts", "INSERT INTO deal_contacts (deal_id, contact_id, role, position) VALUES (?, ?, ?, ?)",
          links())

    def notes() -> Iterator[tuple[Any, ...]]:
        for i in range(1, rows, 2):
            ms, ts = at(i)
            yield (new_id("note", ms), deal_ids[i], f"Referral received ({'mortgage'}).\nReferring agent: "
                   f"Agent {i % 50}.\nClient consent: verbal, {ts}, privacy disclosure privacy-2026-07.", ts)

    write("notes", "INSERT INTO notes (id, deal_id, contact_id, author_user_id, kind, body, created_at)"
          " VALUES (?, ?, NULL, NULL, 'referral', ?, ?)", notes())

    offer_parts = _offer_template()
    envelope_ids = [new_id("env", at(i)[0]) for i in range(rows)] if envelopes else [None] * rows
    local_ids = [new_id("ref", at(i)[0]) for i in range(rows)]
    events: list[tuple[Any, ...]] = []

    def referrals() -> Iterator[tuple[Any, ...]]:
        for i in range(rows):
            ms, ts = at(i)
            received = i % 2 == 1
            peer = peers[i % len(peers)]
            state, path = (RECEIVER_PATHS if received else SENDER_PATHS)[i // 2 % len(SENDER_PATHS)]
            side = "receiver" if received else "sender"
            offer = "".join(_interleave(offer_parts, (ref_ids[i], peer[0], ts, f"Agent {i % 50}",
                                                       f"agent{i % 50}@agency.example", FIRST[i % len(FIRST)],
                                                       f"client{i}@example.com")))
            for seq, status in enumerate(path, start=1):
                events.append((side, peer[1], ref_ids[i], seq, status,
                               "In progress" if status == "in-progress" else None, None, ts))
            yield (local_ids[i], side, peer[1], ref_ids[i], peer[0], state, "mortgage", deal_ids[i],
                   envelope_ids[i], offer, len(path), ts, ts)
            if len(events) >= BATCH:
                conn.executemany(EVENT_SQL, events)
                counts["referral_events"] = counts.get("referral_events", 0) + len(events)
                events.clear()

    write("referrals", "INSERT INTO referrals (local_id, side, peer_node_id, id, connection_id, state,"
          " referral_type, deal_id, envelope_id, offer, last_seq, created_at, updated_at)"
          " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", referrals())
    conn.executemany(EVENT_SQL, events)
    counts["referral_events"] = counts.get("referral_events", 0) + len(events)
    log(f"    referral_events: {counts['referral_events']:,} rows (with the referrals)")

    if envelopes:
        def outbox() -> Iterator[tuple[Any, ...]]:
            for i in range(0, rows, 2):
                ms, ts = at(i)
                peer = peers[i % len(peers)]
                yield (envelope_ids[i], peer[1], peer[2], os.urandom(32).hex(), ts, ms / 1000 + 3 * 86400, ts,
                       local_ids[i])

        write("outbox", "INSERT INTO outbox (envelope_id, peer_node_id, inbox_url, type, body, sha256, state,"
              " attempts, created_at, deadline_at, delivered_at, receipt, subject_kind, subject_id, message)"
              f" VALUES (?, ?, ?, 'referral-offer/1', randomblob({ENVELOPE_BYTES}), ?, 'delivered', 1, ?, ?, ?,"
              f" randomblob({RECEIPT_BYTES}), 'referral', ?, '{{}}')", outbox())

        def inbox() -> Iterator[tuple[Any, ...]]:
            for i in range(1, rows, 2):
                _, ts = at(i)
                yield peers[i % len(peers)][1], envelope_ids[i], os.urandom(32).hex(), ts

        write("inbox", "INSERT INTO inbox (sender, envelope_id, sha256, type, body, inner, receipt, received_at)"
              f" VALUES (?, ?, ?, 'referral-offer/1', randomblob({ENVELOPE_BYTES}), randomblob({INNER_BYTES}),"
              f" randomblob({RECEIPT_BYTES}), ?)", inbox())

    t0 = time.perf_counter()
    # As a node left idle a while has it: every contact and deal indexed for search (its
    # indexer would do it a batch at a time; a rebuild is the same index, at once).
    for table in ("contacts", "deals"):
        conn.execute(f"INSERT INTO {table}_search ({table}_search) VALUES ('rebuild')")
    conn.execute("DELETE FROM search_pending")
    log(f"    search indexes rebuilt in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    size = db_path.stat().st_size
    log(f"    back to WAL in {time.perf_counter() - t0:.1f} s; the file is {size / 2**30:.2f} GiB; "
        f"{time.perf_counter() - started:.0f} s in all")
    return counts


EVENT_SQL = ("INSERT INTO referral_events (side, peer_node_id, referral_id, seq, status, stage, reason, at, applied)"
             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)")


#: What varies between the stored offers, in the order of the values _interleave takes.
_OFFER_SLOTS = ("referral_id", "connection_id", "sent_at", "agent_name", "agent_email", "first_name", "email")


def _offer_template() -> tuple[list[str], list[int]]:
    """The JSON text of the offer bench/inbox_throughput.py sends (two applicants, as the
    node stores it), cut where each of :data:`_OFFER_SLOTS` goes, and the slots in the
    order they come in the text: joining the pieces with the values between them is much
    faster than encoding a million offers."""
    from inbox_throughput import offer

    wire = offer(0, "con_x", datetime.now(UTC)).wire()
    marks = [f"@@slot{k}@@" for k in range(len(_OFFER_SLOTS))]
    slot = dict(zip(_OFFER_SLOTS, marks, strict=True))
    wire.update(referral_id=slot["referral_id"], connection_id=slot["connection_id"], sent_at=slot["sent_at"],
                referring_agent={"name": slot["agent_name"], "email": slot["agent_email"]})
    wire["contacts"][0] = dict(wire["contacts"][0], first_name=slot["first_name"], email=slot["email"])
    text = json.dumps(wire, separators=(",", ":"), sort_keys=True)
    order = sorted(range(len(marks)), key=lambda k: text.index(marks[k]))
    parts = []
    for k in order:
        head, text = text.split(marks[k], 1)
        parts.append(head)
    return [*parts, text], order


def _interleave(template: tuple[list[str], list[int]], values: tuple[str, ...]) -> Iterator[str]:
    parts, order = template
    for part, k in zip(parts, order, strict=False):
        yield part
        yield json.dumps(values[k])[1:-1]
    yield parts[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description="Fill a stopped node's database for the scale benchmarks.")
    parser.add_argument("data_dir", type=Path, help="the node's data folder (made with 'refnode init')")
    parser.add_argument("--rows", type=int, default=100_000, help="contacts, deals and referrals (each)")
    parser.add_argument("--no-envelopes", action="store_true", help="leave out the offers' envelopes")
    args = parser.parse_args()
    db = sqlite3.connect(args.data_dir / "node.db")
    peers = [(r[0], r[1], r[2]) for r in db.execute(
        "SELECT c.id, c.peer_node_id, p.inbox_url FROM connections c JOIN peers p ON p.node_id = c.peer_node_id")]
    db.close()
    fill(args.data_dir / "node.db", rows=args.rows, peers=peers, envelopes=not args.no_envelopes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
