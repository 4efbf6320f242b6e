"""Referral reporting: an agency connected to two brokers sends seven referrals with known
outcomes, and every number of the report is checked on all three nodes; plus the SQL on a
real SQLite file for the edges (date bounds, held updates, grouping, CSV escaping)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningNode, wait_for
from test_two_nodes import connect_by_invitation, referral_body

from node.base.clock import FakeClock
from node.base.errors import ApiError
from node.crm.csv_io import unescape_cell
from node.federation import reporting
from node.storage import store
from node.storage.records import Connection, Referral, ReferralEvent
from node.storage.sqlite import connect, migrate
from protocol.states import ReferralState

DAY1 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DAY2 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
AVA = {"name": "Ava Agent", "email": "ava@agency.example"}
BEN = {"name": "Ben Broker-Friend", "email": "ben@agency.example"}
ZERO_OUTCOMES = {
    "sent": 0,
    "won": 0,
    "lost": 0,
    "declined": 0,
    "withdrawn": 0,
    "in_progress": 0,
    "awaiting": 0,
    "conversion": "0",
}


def outcomes(
    sent: int = 0,
    won: int = 0,
    lost: int = 0,
    declined: int = 0,
    withdrawn: int = 0,
    in_progress: int = 0,
    awaiting: int = 0,
    conversion: str = "0",
) -> dict[str, Any]:
    return {
        "sent": sent,
        "won": won,
        "lost": lost,
        "declined": declined,
        "withdrawn": withdrawn,
        "in_progress": in_progress,
        "awaiting": awaiting,
        "conversion": conversion,
    }


def states(**counts: int) -> dict[str, int]:
    result = dict.fromkeys((s.value for s in ReferralState), 0)
    for key, n in counts.items():
        name = key.replace("_", "-")
        assert name in result, name
        result[name] = n
    return result


def statuses(side: str, **current: int) -> list[dict[str, Any]]:
    """Status rows of one side; ``reached_<status>=n`` overrides reached (else = current)."""
    reached = {
        k[len("reached_") :].replace("_", "-"): v
        for k, v in current.items()
        if k.startswith("reached_")
    }
    now = states(**{k: v for k, v in current.items() if not k.startswith("reached_")})
    return [
        {
            "side": side,
            "status": s,
            "current": n,
            "reached": reached.get(s, n) if s in reporting.TIMELINE_STATUSES else None,
        }
        for s, n in now.items()
    ]


def csv_to_json(text: str) -> dict[str, Any]:
    """Rebuild the JSON report from the long CSV, so the two can be compared whole."""
    # a cell a spreadsheet would run as a formula (a node id may start with '-') has a
    # leading quote in the file; the JSON has the value itself
    rows = [{k: unescape_cell(v) for k, v in r.items()} for r in csv.DictReader(io.StringIO(text))]
    assert rows and list(rows[0]) == list(reporting.CSV_COLUMNS)

    def num(metric: str, value: str) -> Any:
        return value if metric == "conversion" else int(value)

    out: dict[str, Any] = {
        "range": {},
        "totals": [],
        "connections": [],
        "agents": [],
        "statuses": [],
    }
    by_key: dict[tuple[str, ...], dict[str, Any]] = {}
    for r in rows:
        section, metric, value = r["section"], r["metric"], r["value"]
        if section == "range":
            out["range"][metric] = value or None
        elif section == "totals":
            entry = by_key.setdefault(("t", r["side"]), {"side": r["side"]})
            if len(entry) == 1:
                out["totals"].append(entry)
            entry[metric] = num(metric, value)
        elif section == "connection":
            entry = by_key.setdefault(
                ("c", r["subject"]),
                {
                    "connection_id": r["subject"],
                    "connection_name": r["subject_name"],
                    "peer_node_id": r["peer_node_id"],
                    "states": {},
                },
            )
            if len(entry) == 4:
                out["connections"].append(entry)
            if metric.startswith("state."):
                entry["states"][metric[len("state.") :]] = int(value)
            else:
                entry[metric] = int(value)
        elif section == "agent":
            entry = by_key.setdefault(
                ("a", r["side"], r["subject"]),
                {"side": r["side"], "email": r["subject"], "name": r["subject_name"]},
            )
            if len(entry) == 3:
                out["agents"].append(entry)
            entry[metric] = num(metric, value)
        elif section == "status":
            entry = by_key.setdefault(
                ("s", r["side"], r["subject"]),
                {"side": r["side"], "status": r["subject"], "current": 0, "reached": None},
            )
            if ("s", r["side"], r["subject"], "listed") not in by_key:
                by_key[("s", r["side"], r["subject"], "listed")] = {}
                out["statuses"].append(entry)
            entry[metric] = int(value)
        else:
            raise AssertionError(f"unknown section {section}")
    return out


async def get_csv(node: RunningNode, query: str) -> tuple[str, Any]:
    assert node.session is not None
    async with node.session.get(
        f"{node.url}/api/v1/reports/referrals.csv?{query}",
        headers={"Authorization": f"Bearer {node.token}"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "text/csv"
        assert resp.headers["Content-Disposition"].startswith("attachment; filename=")
        return await resp.text(), resp


async def report(node: RunningNode, query: str) -> dict[str, Any]:
    """The JSON report, checked against the CSV export of the same query."""
    # A status update may land between the two requests; compare a pair taken while the
    # JSON stayed the same (a real mismatch fails every attempt).
    for _ in range(5):
        data = await node.api("GET", f"/api/v1/reports/referrals?{query}")
        text, _ = await get_csv(node, query)
        again = await node.api("GET", f"/api/v1/reports/referrals?{query}")
        if again == data:
            break
    assert csv_to_json(text) == data
    return data


# --- the scenario on real nodes -----------------------------------------------------------


async def test_report_numbers_match_a_known_scenario(node_factory):
    clock = FakeClock(DAY1)
    agency = await node_factory("Agency", start=False)
    broker1 = await node_factory("Broker One", start=False)
    broker2 = await node_factory("Broker Two", start=False)
    for n in (agency, broker1, broker2):
        await n.start(clock=clock)
    c1, _ = await connect_by_invitation(agency, broker1)
    c2, _ = await connect_by_invitation(agency, broker2)

    # (connection, agent, day, what the receiver does)
    plan = [
        (c1, AVA, DAY1, ["accepted", "won"]),
        (c1, AVA, DAY1, ["accepted", "won"]),
        (c1, BEN, DAY1, ["accepted", "lost"]),
        (c1, AVA, DAY2, ["accepted"]),
        (c2, AVA, DAY2, ["accepted", "in-progress", "won"]),
        (c2, BEN, DAY2, ["declined"]),
        (c2, AVA, DAY2, []),
    ]
    sent_ids: list[str] = []
    for day in (DAY1, DAY2):
        clock.set(day)
        for cid, agent, when, _ in plan:
            if when == day:
                body = referral_body(cid, referring_agent=agent)
                sent_ids.append(
                    (await agency.api("POST", "/api/v1/referrals", body, expect=202))["referral"][
                        "local_id"
                    ]
                )

        async def all_delivered() -> bool:
            rows = (await agency.api("GET", "/api/v1/referrals?side=sender"))["referrals"]
            return len(rows) == len(sent_ids) and all(r["state"] == "delivered" for r in rows)

        await wait_for(all_delivered)

    # The receivers work the referrals on day 2 (outcomes count by current state, whatever day).
    offers = {}
    for broker in (broker1, broker2):
        for r in (await broker.api("GET", "/api/v1/referrals?side=receiver"))["referrals"]:
            offers[r["id"]] = (broker, r["local_id"])
    sender_rows = {
        r["local_id"]: r
        for r in (await agency.api("GET", "/api/v1/referrals?side=sender"))["referrals"]
    }
    expected_final: dict[str, str] = {}
    for local_id, (_, _, _, moves) in zip(sent_ids, plan, strict=True):
        referral_id = sender_rows[local_id]["id"]
        broker, broker_local = offers[referral_id]
        for status in moves:
            await broker.api("POST", f"/api/v1/referrals/{broker_local}/status", {"status": status})
        expected_final[local_id] = moves[-1] if moves else "delivered"

    async def agency_caught_up() -> bool:
        rows = (await agency.api("GET", "/api/v1/referrals?side=sender"))["referrals"]
        return {r["local_id"]: r["state"] for r in rows} == expected_final

    await wait_for(agency_caught_up)

    names = {
        c["id"]: c["name"] for c in (await agency.api("GET", "/api/v1/connections"))["connections"]
    }
    b1_id, b2_id = broker1.node.me, broker2.node.me
    everything = "from=2026-11-01&to=2026-12-01"

    # The agency: the sent side.
    got = await report(agency, everything)
    assert got["range"] == {"from": "2026-11-01", "to": "2026-12-01", "side": None}
    assert got["totals"] == [
        {"side": "sender"}
        | outcomes(sent=7, won=3, lost=1, declined=1, in_progress=1, awaiting=1, conversion="0.4286"),
        {"side": "receiver"} | ZERO_OUTCOMES,
    ]
    assert got["connections"] == sorted(
        [
            {
                "connection_id": c1,
                "connection_name": names[c1],
                "peer_node_id": b1_id,
                "sent": 4,
                "received": 0,
                "states": states(won=2, lost=1, accepted=1),
            },
            {
                "connection_id": c2,
                "connection_name": names[c2],
                "peer_node_id": b2_id,
                "sent": 3,
                "received": 0,
                "states": states(won=1, declined=1, delivered=1),
            },
        ],
        key=lambda c: (c["connection_name"].lower(), c["connection_id"]),
    )
    assert got["agents"] == [
        {"side": "sender", "email": AVA["email"], "name": AVA["name"]}
        | outcomes(sent=5, won=3, in_progress=1, awaiting=1, conversion="0.6000"),
        {"side": "sender", "email": BEN["email"], "name": BEN["name"]}
        | outcomes(sent=2, lost=1, declined=1, conversion="0.0000"),
    ]
    assert got["statuses"] == (
        statuses(
            "sender",
            won=3,
            lost=1,
            declined=1,
            accepted=1,
            delivered=1,
            reached_accepted=5,
            reached_in_progress=1,
        )
        + statuses("receiver")
    )

    # Day 2 only: referrals 4-7. Day 1 only: referrals 1-3 (won later, still counted won).
    day2 = await report(agency, "from=2026-11-24&to=2026-11-25&side=sender")
    assert day2["totals"] == [
        {"side": "sender"} | outcomes(sent=4, won=1, declined=1, in_progress=1, awaiting=1, conversion="0.2500")
    ]
    assert [a["email"] for a in day2["agents"]] == [AVA["email"], BEN["email"]]
    assert day2["agents"][0] == {
        "side": "sender",
        "email": AVA["email"],
        "name": AVA["name"],
    } | outcomes(sent=3, won=1, in_progress=1, awaiting=1, conversion="0.3333")
    assert day2["agents"][1] == {
        "side": "sender",
        "email": BEN["email"],
        "name": BEN["name"],
    } | outcomes(sent=1, declined=1, conversion="0.0000")
    assert {c["connection_id"]: (c["sent"], c["states"]) for c in day2["connections"]} == {
        c1: (1, states(accepted=1)),
        c2: (3, states(won=1, declined=1, delivered=1)),
    }
    day1 = await report(agency, "from=2026-11-23&to=2026-11-24")
    assert day1["totals"][0] == {"side": "sender"} | outcomes(
        sent=3, won=2, lost=1, conversion="0.6667"
    )
    assert [(a["email"], a["sent"], a["won"], a["conversion"]) for a in day1["agents"]] == [
        (AVA["email"], 2, 2, "1.0000"),
        (BEN["email"], 1, 0, "0.0000"),
    ]

    # Broker one: the received side.
    got = await report(broker1, everything)
    assert got["totals"] == [
        {"side": "sender"} | ZERO_OUTCOMES,
        {"side": "receiver"} | outcomes(sent=4, won=2, lost=1, in_progress=1, conversion="0.5000"),
    ]
    b1_names = {
        c["id"]: c["name"] for c in (await broker1.api("GET", "/api/v1/connections"))["connections"]
    }
    assert got["connections"] == [
        {
            "connection_id": c1,
            "connection_name": b1_names[c1],
            "peer_node_id": agency.node.me,
            "sent": 0,
            "received": 4,
            "states": states(won=2, lost=1, accepted=1),
        }
    ]
    assert got["agents"] == [
        {"side": "receiver", "email": AVA["email"], "name": AVA["name"]}
        | outcomes(sent=3, won=2, in_progress=1, conversion="0.6667"),
        {"side": "receiver", "email": BEN["email"], "name": BEN["name"]}
        | outcomes(sent=1, lost=1, conversion="0.0000"),
    ]
    assert got["statuses"] == statuses("sender") + statuses(
        "receiver", won=2, lost=1, accepted=1, reached_accepted=4
    )

    # Broker two.
    got = await report(broker2, everything + "&side=receiver")
    assert got["totals"] == [
        {"side": "receiver"}
        | outcomes(sent=3, won=1, declined=1, awaiting=1, conversion="0.3333")
    ]
    assert got["connections"][0]["received"] == 3
    assert got["connections"][0]["states"] == states(won=1, declined=1, received=1)
    assert got["agents"] == [
        {"side": "receiver", "email": AVA["email"], "name": AVA["name"]}
        | outcomes(sent=2, won=1, awaiting=1, conversion="0.5000"),
        {"side": "receiver", "email": BEN["email"], "name": BEN["name"]}
        | outcomes(sent=1, declined=1, conversion="0.0000"),
    ]
    assert got["statuses"] == statuses(
        "receiver", won=1, declined=1, received=1, reached_accepted=1, reached_in_progress=1
    )

    # A range with none of it: zeros everywhere, active connections still listed.
    for n, conns in ((agency, {c1, c2}), (broker1, {c1}), (broker2, {c2})):
        for empty in ("from=2026-11-01&to=2026-11-23", "from=2026-11-25", "to=2026-11-23"):
            got = await report(n, empty)
            assert got["totals"] == [
                {"side": "sender"} | ZERO_OUTCOMES,
                {"side": "receiver"} | ZERO_OUTCOMES,
            ]
            assert got["agents"] == []
            assert {c["connection_id"] for c in got["connections"]} == conns
            assert all(
                c["sent"] == c["received"] == 0 and set(c["states"].values()) == {0}
                for c in got["connections"]
            )
            assert got["statuses"] == statuses("sender") + statuses("receiver")

    # The other side's filter shows nothing at each node.
    got = await report(agency, everything + "&side=receiver")
    assert got["totals"] == [{"side": "receiver"} | ZERO_OUTCOMES] and got["agents"] == []

    # No range at all: everything.
    assert (await report(agency, ""))["totals"][0]["sent"] == 7


async def test_any_user_may_read_reports_and_bad_params_name_the_parameter(node_factory):
    agency = await node_factory("Agency")
    user = await agency.api(
        "POST", "/api/v1/users", {"email": "bo@agency.example", "name": "Bo"}, expect=201
    )
    token = (
        await agency.api("POST", "/api/v1/tokens", {"user_id": user["user"]["id"]}, expect=201)
    )["token"]
    got = await agency.api(
        "GET", "/api/v1/reports/referrals?from=2026-01-01&to=2026-02-01", token=token
    )
    assert got["totals"] == [
        {"side": "sender"} | ZERO_OUTCOMES,
        {"side": "receiver"} | ZERO_OUTCOMES,
    ]
    await agency.api("GET", "/api/v1/reports/referrals", token="rnt_nope", expect=401)

    bad = [
        ("from=2026-13-01", "from"),
        ("from=20261101", "from"),
        ("from=2026-11-1", "from"),
        ("to=yesterday", "to"),
        ("from=2026-11-02&to=2026-11-02", "to"),
        ("from=2026-11-03&to=2026-11-02", "to"),
        ("side=both", "side"),
        ("side=", "side"),
        ("form=2026-11-01", "form"),
        ("from=2026-11-01&from=2026-11-02", "from"),
    ]
    for path in ("/api/v1/reports/referrals", "/api/v1/reports/referrals.csv"):
        for query, param in bad:
            body = await agency.api("GET", f"{path}?{query}", expect=400)
            assert body["error"]["field"] == param, (query, body)
            assert param in body["error"]["message"], (query, body)


# --- the SQL on a real SQLite file -----------------------------------------------------------


@pytest.fixture
def conn(tmp_path: Path):
    c = connect(tmp_path / "report.db")
    migrate(c)
    yield c
    c.close()


def add_connection(conn, cid: str, name: str, peer: str, state: str = "active") -> None:
    store.insert_connection(
        conn,
        Connection(
            id=cid,
            peer_node_id=peer,
            role="requester",
            state=state,
            direction="both",
            name=name,
            invitation_id=None,
            target_email=None,
            requested_by=None,
            message="",
            settings={},
            created_at="2026-01-01T00:00:00Z",
            updated_at="2026-01-01T00:00:00Z",
        ),
    )


def add_referral(
    conn,
    n: int,
    *,
    side: str = "sender",
    state: str = "delivered",
    cid: str = "con_a",
    peer: str = "peer_a",
    at: str = "2026-11-23T10:00:00Z",
    agent: dict[str, str] | None = None,
    events: list[tuple[str, bool]] = (),
) -> None:
    store.insert_referral(
        conn,
        Referral(
            local_id=f"ref_{n}",
            side=side,
            peer_node_id=peer,
            id=f"rfl_{n}",
            connection_id=cid,
            state=state,
            referral_type="mortgage",
            deal_id=None,
            envelope_id=None,
            offer={"referring_agent": agent or AVA},
            last_seq=len(events),
            created_at=at,
            updated_at=at,
        ),
    )
    for seq, (status, applied) in enumerate(events, start=1):
        store.insert_event(
            conn,
            ReferralEvent(
                side=side,
                peer_node_id=peer,
                referral_id=f"rfl_{n}",
                seq=seq,
                status=status,
                stage=None,
                reason=None,
                at=at,
                applied=applied,
            ),
        )


def q(
    frm: str | None = None, to: str | None = None, side: str | None = None
) -> reporting.ReportQuery:
    query = {k: v for k, v in (("from", frm), ("to", to), ("side", side)) if v is not None}
    return reporting.parse_query(query)


def test_range_bounds_are_utc_days_from_inclusive_to_exclusive(conn):
    add_connection(conn, "con_a", "Alpha", "peer_a")
    add_referral(conn, 1, at="2026-11-22T23:59:59Z")
    add_referral(conn, 2, at="2026-11-23T00:00:00Z")
    add_referral(conn, 3, at="2026-11-23T23:59:59Z")
    add_referral(conn, 4, at="2026-11-24T00:00:00Z")
    totals = reporting.side_totals(conn, q("2026-11-23", "2026-11-24"))
    assert [(t.side, t.outcomes.sent) for t in totals] == [("sender", 2), ("receiver", 0)]
    assert reporting.side_totals(conn, q("2026-11-23"))[0].outcomes.sent == 3
    assert reporting.side_totals(conn, q(to="2026-11-23"))[0].outcomes.sent == 1
    assert reporting.side_totals(conn, q())[0].outcomes.sent == 4


def test_agents_group_by_email_case_insensitively_with_the_latest_name(conn):
    add_connection(conn, "con_a", "Alpha", "peer_a")
    add_referral(
        conn,
        1,
        agent={"name": "Ava A.", "email": "AVA@agency.example"},
        state="won",
        at="2026-11-23T10:00:00Z",
    )
    add_referral(
        conn,
        2,
        agent={"name": "Ava Agent", "email": "ava@agency.example"},
        state="lost",
        at="2026-11-23T11:00:00Z",
    )
    add_referral(
        conn,
        3,
        agent={"name": "Ava", "email": "ava@agency.example"},
        state="won",
        at="2026-11-23T09:00:00Z",
    )
    (row,) = reporting.per_agent(conn, q())
    assert (row.email, row.name) == ("ava@agency.example", "Ava Agent")
    assert row.outcomes.as_dict() == outcomes(sent=3, won=2, lost=1, conversion="0.6667")


def test_reached_counts_applied_updates_only_and_conversion_rounds_half_up(conn):
    add_connection(conn, "con_a", "Alpha", "peer_a")
    # won via accepted; an update held for an earlier seq does not count as reached
    add_referral(conn, 1, state="won", events=[("accepted", True), ("won", True)])
    add_referral(conn, 2, state="accepted", events=[("accepted", True), ("lost", False)])
    add_referral(conn, 3, state="withdrawn", events=[("withdrawn", True)])
    add_referral(conn, 4, state="accepted", side="receiver", events=[("accepted", True)])
    rows = {(s.side, s.status): (s.current, s.reached) for s in reporting.per_status(conn, q())}
    assert rows[("sender", "accepted")] == (1, 2)
    assert rows[("sender", "won")] == (1, 1)
    assert rows[("sender", "lost")] == (0, 0)
    assert rows[("sender", "withdrawn")] == (1, 1)
    assert rows[("sender", "delivered")] == (0, None)
    assert rows[("receiver", "accepted")] == (1, 1)
    assert [s.side for s in reporting.per_status(conn, q(side="receiver"))] == ["receiver"] * len(
        ReferralState
    )
    assert reporting.conversion(1, 8) == "0.1250"
    assert reporting.conversion(1, 3) == "0.3333"
    assert reporting.conversion(2, 3) == "0.6667"
    assert reporting.conversion(1, 16) == "0.0625"
    assert reporting.conversion(1, 32000) == "0.0000"
    assert reporting.conversion(1, 20000) == "0.0001"  # 0.00005 rounds half up
    assert reporting.conversion(5, 5) == "1.0000"
    assert reporting.conversion(0, 0) == "0"


def test_connections_listed_with_names_and_inactive_ones_only_with_referrals(conn):
    add_connection(conn, "con_a", "alpha", "peer_a")
    add_connection(conn, "con_b", "Beta", "peer_b", state="disconnected")
    add_connection(conn, "con_c", "Gamma", "peer_c", state="disconnected")
    add_referral(conn, 1, cid="con_b", peer="peer_b", state="won")
    add_referral(conn, 2, cid="con_b", peer="peer_b", side="receiver", state="received")
    rows = reporting.per_connection(conn, q())
    assert [
        (r.connection_id, r.connection_name, r.peer_node_id, r.sent, r.received) for r in rows
    ] == [("con_a", "alpha", "peer_a", 0, 0), ("con_b", "Beta", "peer_b", 1, 1)]
    assert {k: v for k, v in rows[1].states.items() if v} == {"won": 1, "received": 1}
    only_received = reporting.per_connection(conn, q(side="receiver"))
    assert [(r.connection_id, r.sent, r.received) for r in only_received] == [
        ("con_a", 0, 0),
        ("con_b", 0, 1),
    ]


def test_csv_escapes_formula_like_text_and_round_trips(conn):
    add_connection(conn, "con_a", '=HYPERLINK("x")', "peer_a")
    add_referral(
        conn, 1, side="receiver", agent={"name": "@evil", "email": "+1@x.example"}, state="won"
    )
    report = reporting.build_report(conn, q("2026-11-01", "2026-12-01"))
    text = reporting.report_csv(report)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["subject_name"] for r in rows if r["section"] == "connection"} == {
        '\'=HYPERLINK("x")'
    }
    agent_rows = [r for r in rows if r["section"] == "agent"]
    assert {(r["subject"], r["subject_name"]) for r in agent_rows} == {("'+1@x.example", "'@evil")}
    data = reporting.report_json(report)
    assert data["agents"][0]["name"] == "@evil"  # JSON carries the value as it is
    assert text.endswith("\r\n") and text.startswith(",".join(reporting.CSV_COLUMNS) + "\r\n")


def test_parse_query_rejects_bad_parameters_by_name():
    assert reporting.parse_query({}) == reporting.ReportQuery()
    for query, field in [
        ({"from": "2026-02-30"}, "from"),
        ({"to": "2026-1-01"}, "to"),
        ({"from": "2026-01-02", "to": "2026-01-01"}, "to"),
        ({"side": "Sender"}, "side"),
        ({"limit": "5"}, "limit"),
    ]:
        with pytest.raises(ApiError) as info:
            reporting.parse_query(query)
        assert info.value.status == 400 and info.value.field == field
