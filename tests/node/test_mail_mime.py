"""The sent message (node.mail.mime): what the standard library's parser reads from it is
what the same mail built with ``email.message.EmailMessage`` reads as, names and subjects
that are not ASCII included; no header value can add a header; lines stay short."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from email.utils import formataddr

import pytest

from node.mail.mime import message_bytes

DATE = "Fri, 04 Dec 2026 10:00:00 +0000"


def _mail(**given: str) -> dict[str, str]:
    return {"mail_id": "mail_01kdyak3487aj56vd0mvtn85v7", "from_name": "Acme Finance",
            "from_addr": "noreply@acme.example", "to_name": "Bo Owner", "to_addr": "bo@acme.example",
            "subject": "New referral from Harbour Realty", "date": DATE,
            "text": "Hello Bo,\n\nA referral arrived.\n", "html": "<p>Hello Bo,</p><p>A referral arrived.</p>\n",
            **given}


def _stdlib(mail: dict[str, str]) -> EmailMessage:
    """The same mail as the standard library's EmailMessage makes it (which ends a body
    with a line break if it has none: these bodies have one)."""
    msg = EmailMessage()
    msg["From"] = formataddr((mail["from_name"], mail["from_addr"]))
    msg["To"] = formataddr((mail["to_name"], mail["to_addr"]))
    msg["Subject"] = mail["subject"]
    msg["Date"] = mail["date"]
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(mail["text"])
    msg.add_alternative(mail["html"], subtype="html")
    return email.message_from_bytes(bytes(msg), policy=email.policy.default)  # type: ignore[return-value]


def _read(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def _fields(msg: EmailMessage) -> tuple[object, ...]:
    return (str(msg["From"]), str(msg["To"]), str(msg["Subject"]), str(msg["Date"]), str(msg["Auto-Submitted"]),
            msg.get_content_type(), msg.get_body(preferencelist=("plain",)).get_content(),  # type: ignore[union-attr]
            msg.get_body(preferencelist=("html",)).get_content())  # type: ignore[union-attr]


@pytest.mark.parametrize("given", [
    {},
    {"to_name": "José Ñúñez", "from_name": "Crédit Agricole Courtage", "subject": "Nouvelle recommandation : Müller"},
    {"to_name": "Smith, Jo (Broker)", "subject": "Re: deal; 50% \"settled\""},
    {"subject": ("A long subject " * 13).strip(), "to_name": "Bartholomew Featherstonehaugh-Cholmondeley " * 3},
    {"subject": ("Überweisung für das Darlehen " * 7).strip(), "to_name": "Ægir Þórsson-Ørsted " * 5},
    {"text": "ligne accentuée: é à ü 中文\n" + "x" * 500 + "\n.\n..\nFrom the start\n", "html": "<p>中文 &amp; é</p>\n"},
    {"to_name": ""},
], ids=["ascii", "accents", "specials", "long-ascii", "long-unicode", "bodies", "no-name"])
def test_the_parser_reads_what_the_stdlib_message_says(given: dict[str, str]) -> None:
    mail = _mail(**given)
    raw = message_bytes(**mail)
    assert _fields(_read(raw)) == _fields(_stdlib(mail))
    assert _read(raw)["Message-ID"].endswith("@acme.example>") and mail["mail_id"] in _read(raw)["Message-ID"]
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    lines = raw.split(b"\r\n")
    assert max(map(len, lines)) <= 998
    head = lines[:lines.index(b"")]
    for line in head:  # folded where it is long, but for an ASCII name in an address and the one-word id
        assert len(line) <= 78 or line.startswith((b"To: ", b"From: ", b"Message-ID: ")) and line.isascii(), line


@pytest.mark.parametrize("name", [
    "Núñez, José <jn@other.example>", 'Crédit "Agricole", Courtage', 'Smith, "Jo" <x@y.example>', "O'Brien; Ltd.",
])
def test_a_name_reads_back_whole_and_names_one_address(name: str) -> None:
    # EmailMessage, as the sender used it before, made two addresses of the second one
    # (it encoded the first word and left the quotes bare, so the comma parted them):
    # here the names are compared with what was given.
    msg = _read(message_bytes(**_mail(to_name=name, from_name=name)))
    for header, addr in (("To", "bo@acme.example"), ("From", "noreply@acme.example")):
        (address,) = msg[header].addresses
        assert (address.display_name, address.addr_spec) == (name, addr)


def test_a_name_too_long_for_a_line_even_quoted_is_folded_and_names_one_address() -> None:
    # Names are at most a few hundred characters; this one, quoted, would pass 998.
    name = ('"O\'Brien", Smith; ' * 50).strip()
    raw = message_bytes(**_mail(to_name=name))
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    to = head[head.index("To: "):head.index("\r\nSubject: ")].split("\r\n")
    assert len(to) > 10 and max(map(len, to)) <= 78  # folded, as encoded words
    (address,) = _read(raw)["To"].addresses
    assert address.addr_spec == "bo@acme.example"
    # Python's parser puts a space between two encoded words of a name where RFC 2047
    # says to join them: the words read back, spaces aside.
    assert address.display_name.replace(" ", "") == name.replace(" ", "")


@pytest.mark.parametrize("field", ["to_name", "from_name", "subject"])
def test_a_line_break_in_a_value_adds_no_header(field: str) -> None:
    mail = _mail(**{field: "Eve\r\nBcc: spy@evil.example\nX-Evil: 1"})
    msg = _read(message_bytes(**mail))
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    assert [a.addr_spec for a in msg["To"].addresses] == ["bo@acme.example"]
    assert "spy@evil.example" in str(msg[{"to_name": "To", "from_name": "From", "subject": "Subject"}[field]])


def test_an_address_that_is_not_ascii_is_refused() -> None:
    with pytest.raises(ValueError):
        message_bytes(**_mail(to_addr="josé@bücher.example"))
    with pytest.raises(ValueError):
        message_bytes(**_mail(to_addr="josé@bücher.example", to_name="José"))
