"""A large CSV import through the admin API of a real node: the file is read as it
arrives and its rows checked a slice at a time, so requests made meanwhile are answered;
the answer is a summary, a refusal lists the first problems and counts them all, and the
limits refuse a file while it is still arriving."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from conftest import RunningNode

from node.crm.csv_stage import FOLDER

from .conftest import Csv, call

IMPORT = "/api/v1/import/contacts"


async def count_contacts(n: RunningNode) -> int:
    return await n.node.db.read(lambda c: c.execute("SELECT count(*) FROM contacts").fetchone()[0])


async def test_a_large_import_leaves_other_requests_answered_and_answers_briefly(node_factory) -> None:
    n = await node_factory("Importer")
    rows = 30_000
    data = "first_name,last_name\n" + "".join(f"N{i},S{i % 97}\n" for i in range(rows))
    latencies: list[float] = []
    importing = True

    async def probe() -> None:  # an admin reading the database, every 10 ms
        while importing:
            started = time.perf_counter()
            await n.api("GET", "/api/v1/users")
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)

    probing = asyncio.create_task(probe())
    try:
        answer = await call(n, "POST", IMPORT, Csv(data))
    finally:
        importing = False
        await probing
    assert answer.status == 201, answer.text[:500]
    assert len(latencies) >= 10, latencies
    assert max(latencies) < 1.0, f"a request waited {max(latencies):.2f} s"
    assert len(answer.text) < 5000, f"{len(answer.text)} bytes"  # a summary, not 30,000 contacts
    assert answer.body["imported"] == rows
    assert len(answer.body["ids"]) == 100 and answer.body["ids"][0].startswith("ct_")
    assert await count_contacts(n) == rows
    first = await n.api("GET", f"/api/v1/contacts/{answer.body['ids'][0]}")
    assert (first["contact"]["first_name"], first["contact"]["last_name"]) == ("N0", "S0")


async def test_a_refusal_lists_the_first_hundred_problems_and_counts_them_all(node_factory) -> None:
    n = await node_factory("Importer")
    data = "first_name,email\n" + "".join(f"P{i},not-an-email-{i}\n" for i in range(300))
    answer = await call(n, "POST", IMPORT, Csv(data))
    assert answer.status == 400
    error = answer.body["error"]
    assert error["code"] == "invalid"
    assert error["message"] == "nothing was imported: row 2, email: must be an email address (and 299 more)"
    assert error["detail"]["error_count"] == 300
    assert len(error["detail"]["errors"]) == 100
    assert error["detail"]["errors"][99] == {"row": 101, "field": "email", "message": "must be an email address"}
    assert len(answer.text) < 20_000
    assert await count_contacts(n) == 0


async def test_more_rows_than_the_limit_are_refused_while_the_file_is_still_arriving(node_factory) -> None:
    """The node answers 413 as soon as the row past the limit arrives: the client, which
    holds the rest of the file back until it has an answer, never has to send it."""
    n = await node_factory("Importer", csv_import_max_rows=1000)
    answered = asyncio.Event()
    held_back = True

    async def pieces() -> AsyncIterator[bytes]:
        nonlocal held_back
        yield ("first_name\n" + "".join(f"P{i}\n" for i in range(1001))).encode()
        try:
            await asyncio.wait_for(answered.wait(), 5)
        except TimeoutError:
            held_back = False
            yield "".join(f"Q{i}\n" for i in range(10)).encode()

    headers = {"Authorization": f"Bearer {n.token}", "Content-Type": "text/csv"}
    assert n.session is not None
    async with n.session.post(n.url + IMPORT, data=pieces(), headers=headers) as resp:
        answered.set()
        status, body = resp.status, await resp.json()
    assert status == 413 and held_back
    assert body["error"]["code"] == "too_large"
    assert body["error"]["message"] == "the file has more than 1000 rows (csv_import_max_rows); split it"
    assert await count_contacts(n) == 0
    # At the limit it is fine.
    answer = await call(n, "POST", IMPORT, Csv("first_name\n" + "".join(f"P{i}\n" for i in range(1000))))
    assert answer.status == 201 and answer.body["imported"] == 1000


async def test_more_bytes_than_the_limit_are_refused(node_factory) -> None:
    n = await node_factory("Importer", csv_import_max_bytes=4096)
    answer = await call(n, "POST", IMPORT, Csv("first_name\n" + "".join(f"P{i}\n" for i in range(1000))))
    assert answer.status == 413
    assert answer.body["error"]["code"] == "too_large"
    assert "larger than 4096 bytes (csv_import_max_bytes)" in answer.body["error"]["message"]
    assert await count_contacts(n) == 0


async def test_a_stage_left_by_an_import_cut_short_is_removed_when_the_node_starts(node_factory) -> None:
    n = await node_factory("Importer", start=False)
    folder = n.config.data_dir / FOLDER
    folder.mkdir()
    (folder / "0123abcd.db").write_bytes(b"rows of an import the node never finished")
    await n.start()
    assert list(folder.iterdir()) == []
    answer = await call(n, "POST", IMPORT, Csv("first_name\nJo\n"))
    assert answer.status == 201 and list(folder.iterdir()) == []  # its own stage is gone too
