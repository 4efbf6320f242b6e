"""node.logs: JSON output, and the redaction safety net."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator

import pytest
import structlog

from node.base.logs import REDACTED, configure_logging, get_logger, is_sensitive_key


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Leave logging as we found it for the tests that run after these."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def output() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_keeps_routing_fields_and_redacts_secrets_and_client_data(output: io.StringIO) -> None:
    log = get_logger("node.inbox").bind(peer="NODE-B", connection_id="c-1")
    log.info(
        "envelope accepted",
        envelope_id="e-42",
        type="referral-offer",
        message_type="referral-offer",
        referral_id="r-7",
        status=200,
        count=3,
        token="tok-abc",
        passphrase="hunter2",
        api_key="k-123",
        authorization="Bearer xyz",
        email="ann@example.org",
        user_email="bob@example.org",
        phone="+44 7700 900000",
        first_name="Ann",
        lastName="Smith",
        name="Ann Smith",
        address="1 High St",
        date_of_birth="1980-01-01",
        dob="1980-01-01",
        message="please call me",
        body=b"\x00raw",
        payload='{"client": "x"}',
        plaintext="secret stuff",
        secret="s3",
    )
    (record,) = lines(output)
    assert record["event"] == "envelope accepted"
    assert record["level"] == "info"
    assert record["logger"] == "node.inbox"
    assert "timestamp" in record
    for key, value in {
        "peer": "NODE-B",
        "connection_id": "c-1",
        "envelope_id": "e-42",
        "type": "referral-offer",
        "message_type": "referral-offer",
        "referral_id": "r-7",
        "status": 200,
        "count": 3,
    }.items():
        assert record[key] == value, key
    for key in [
        "token", "passphrase", "api_key", "authorization", "email", "user_email", "phone",
        "first_name", "lastName", "name", "address", "date_of_birth", "dob", "message",
        "body", "payload", "plaintext", "secret",
    ]:  # fmt: skip
        assert record[key] == REDACTED, key
    text = output.getvalue()
    for leaked in [
        "tok-abc",
        "hunter2",
        "ann@example.org",
        "Ann",
        "7700",
        "High St",
        "1980",
        "please call",
    ]:
        assert leaked not in text


def test_nested_values_and_secret_looking_strings_are_redacted(output: io.StringIO) -> None:
    get_logger("node.cli").warning(
        "invitation created",
        detail={
            "code": "unknown_user",
            "email": "ann@example.org",
            "people": [{"first_name": "Ann"}],
        },
        note_text="x",
        url="https://b.example/refnode/v1/invitations/i1?node=N",
        shown="rnk1_SECRETSECRET",
    )
    (record,) = lines(output)
    assert record["detail"] == {
        "code": "unknown_user",
        "email": REDACTED,
        "people": [{"first_name": REDACTED}],
    }
    assert record["note_text"] == REDACTED
    assert record["url"] == "https://b.example/refnode/v1/invitations/i1?node=N"
    assert record["shown"] == REDACTED
    assert "SECRETSECRET" not in output.getvalue()


def test_context_vars_are_redacted_too(output: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(envelope_id="e-1", email="ann@example.org")
    get_logger("node.outbox").info("sent")
    (record,) = lines(output)
    assert record["envelope_id"] == "e-1"
    assert record["email"] == REDACTED


def test_stdlib_logs_use_the_same_format_and_level(output: io.StringIO) -> None:
    logging.getLogger("aiohttp.access").info("GET /.well-known/refnode 200")
    logging.getLogger("aiohttp.server").debug("below the level")
    get_logger("node.x").debug("also below the level")
    (record,) = lines(output)
    assert record["event"] == "GET /.well-known/refnode 200"
    assert record["logger"] == "aiohttp.access"
    assert record["level"] == "info"


def test_library_errors_lose_query_strings_and_exception_messages(output: io.StringIO) -> None:
    """aiohttp's own errors quote the request line: what a client put there stays out."""
    try:
        raise ValueError("Got more than 8190 bytes: b'/api/v1/contacts?q=someone%40example.com&pad=aaa'")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request from 127.0.0.1")
    logging.getLogger("aiohttp.web").warning("slow: GET /api/v1/contacts?q=jo%40example.com took 2 s")
    first, second = lines(output)
    assert "someone" not in json.dumps(first) and "example.com" not in json.dumps(first)
    assert first["event"] == "Error handling request from 127.0.0.1"
    assert first["error"] == "ValueError" and first["raised_at"].startswith("test_logs.py:")
    assert first["frames"] and "exception" not in first
    assert second["event"] == "slow: GET /api/v1/contacts?[redacted] took 2 s"


def test_exceptions_are_rendered_in_json(output: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger("node.x").exception("delivery failed", envelope_id="e-9")
    (record,) = lines(output)
    assert record["envelope_id"] == "e-9"
    assert "RuntimeError: boom" in record["exception"]


def test_console_format_is_readable_and_redacted() -> None:
    stream = io.StringIO()
    configure_logging("console", "debug", stream=stream)
    get_logger("node.x").debug("hello", peer="NODE-B", password="hunter2")
    text = stream.getvalue()
    assert "hello" in text and "NODE-B" in text
    assert "hunter2" not in text and REDACTED in text
    assert not text.lstrip().startswith("{")


def test_reconfiguring_does_not_duplicate_output() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", "info", stream=first)
    configure_logging("json", "info", stream=second)
    get_logger("node.x").info("once")
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


def test_a_logger_made_before_configuring_follows_every_configuration() -> None:
    log = get_logger("node.early")  # as modules do at import, before configure_logging
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", "info", stream=first)
    log.info("to the first")
    log.debug("below the first level")
    configure_logging("console", "debug", stream=second)
    log.debug("to the second", peer="NODE-B")
    assert [r["event"] for r in lines(first)] == ["to the first"]
    assert "to the second" in second.getvalue() and "NODE-B" in second.getvalue()
    assert not second.getvalue().lstrip().startswith("{")


class SlowStream(io.StringIO):
    """Writes each line in two halves, letting other threads run in between."""

    def write(self, text: str) -> int:
        half = len(text) // 2
        super().write(text[:half])
        time.sleep(0.0001)
        return super().write(text[half:])


def test_lines_from_threads_and_the_standard_library_never_interleave() -> None:
    stream = SlowStream()
    configure_logging("json", "info", stream=stream)

    def ours() -> None:
        for i in range(30):
            get_logger("node.x").bind(peer="NODE-B").info("ours", count=i)

    def stdlib() -> None:
        for i in range(30):
            logging.getLogger("aiohttp.access").info("theirs %d", i)

    threads = [threading.Thread(target=f) for f in (ours, ours, stdlib, stdlib)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(records) == 120
    assert sorted({r["logger"] for r in records}) == ["aiohttp.access", "node.x"]


def test_an_event_that_cannot_be_rendered_is_reported_not_raised(
    output: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    loop: dict[str, object] = {"code": "x"}
    loop["again"] = loop  # JSON cannot render a cycle
    get_logger("node.x").info("cyclic", detail=loop)  # must not raise at the caller
    get_logger("node.x").info("next")
    assert [r["event"] for r in lines(output)] == ["next"]
    assert "Logging error" in capsys.readouterr().err


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        configure_logging("xml", "info")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        configure_logging("json", "loud")


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [
        ("peer", False), ("envelope_id", False), ("type", False), ("kid", False),
        ("http_status", False), ("attempt", False), ("size_bytes", False), ("monkey", False),
        ("X-Auth-Token", True), ("clientEmail", True), ("keys", True), ("addresses", True),
        ("private_key", True), ("requested_by_name", True), ("surname", True),
    ],
)  # fmt: skip
def test_sensitive_key_names(key: str, sensitive: bool) -> None:
    assert is_sensitive_key(key) is sensitive


def test_unexpected_errors_are_logged_without_their_message() -> None:
    from pydantic import BaseModel, ValidationError

    from node.base.logs import failure_fields

    class Client(BaseModel):
        phone: int

    try:
        Client(phone="Jo Citizen +61 400 000 000")  # type: ignore[arg-type]
    except ValidationError as exc:
        fields = failure_fields(exc)
    assert fields["error"] == "ValidationError"
    assert "Jo Citizen" not in repr(fields) and "400" not in repr(fields)
    assert fields["raised_at"].endswith(tuple("0123456789"))
