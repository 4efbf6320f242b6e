"""The client portal's parts on their own: video links, fact-find fields and sections by
type, the sealed file format and the data key, passcode HMACs."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest

from node.base.key_files import KeyStoreError
from node.crm.errors import CrmError
from node.portal import vault
from node.portal.catalogue import FieldProblem, catalogue, check_value, read_section, readable
from node.portal.settings import check_flow, embed_url


@pytest.mark.parametrize(("url", "embed"), [
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"),
    ("https://youtu.be/dQw4w9WgXcQ", "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"),
    ("https://m.youtube.com/watch?v=dQw4w9WgXcQ&t=30", "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"),
    ("https://www.youtube.com/shorts/dQw4w9WgXcQ", "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"),
    ("https://vimeo.com/76979871", "https://player.vimeo.com/video/76979871?dnt=1"),
    ("https://player.vimeo.com/video/76979871", "https://player.vimeo.com/video/76979871?dnt=1"),
])
def test_youtube_and_vimeo_links_play_through_the_privacy_enhanced_players(url: str, embed: str) -> None:
    assert embed_url(url) == embed


@pytest.mark.parametrize("url", [
    "https://evil.example/watch?v=dQw4w9WgXcQ", "https://youtube.com.evil.example/watch?v=dQw4w9WgXcQ",
    "javascript:alert(1)", "https://www.youtube.com/watch?v=short", "https://www.youtube.com/watch?v=dQw4w9WgXcQ\"x",
    "https://user:pw@www.youtube.com/watch?v=dQw4w9WgXcQ", "https://www.youtube.com:8443/watch?v=dQw4w9WgXcQ",
    "ftp://vimeo.com/76979871", "https://vimeo.com/abc", "https://player.vimeo.com/76979871", "", "not a url",
])
def test_any_other_link_is_refused(url: str) -> None:
    with pytest.raises(CrmError) as caught:
        embed_url(url)
    assert caught.value.field == "url" and "YouTube or Vimeo" in caught.value.message


def _field(type_: str, **kw: object):
    for section in catalogue().sections:
        for sub in section.subsections:
            for f in sub.fields:
                if f.type == type_ and all(getattr(f, k) == v for k, v in kw.items()):
                    return f
    raise AssertionError(type_)


@pytest.mark.parametrize(("type_", "good", "clean", "bad"), [
    ("date", " 1990-02-27 ", "1990-02-27", ["31/02/1990", "1990-02-30", "2999-01-01", "1800-01-01"]),
    ("email", "ana@example.com", "ana@example.com", ["ana", "ana@", "a b@example.com"]),
    ("phone", "+61 411 111 111", "+61 411 111 111", ["call me", "12", "+61 411 111 111 111 111 111"]),
    ("postcode", "2000", "2000", ["200", "20000", "ABCD"]),
    ("integer", "3", "3", ["-1", "1.5", "three", "100"]),
    ("money", "$1,250.5", "1250.50", ["-5", "1.234", "NaN", "Infinity", "1e20", "lots"]),
    ("yesno", "Yes", "Yes", ["yes", "Maybe"]),
])
def test_each_field_type_takes_its_values_and_refuses_others(type_: str, good: str, clean: str,
                                                              bad: list[str]) -> None:
    field = _field(type_)
    assert check_value(field, good) == clean
    for value in bad:
        with pytest.raises(FieldProblem):
            check_value(field, value)
    with pytest.raises(FieldProblem):
        check_value(field, "x" * 201)


def test_a_select_takes_only_its_options() -> None:
    field = _field("select", key="status")
    assert check_value(field, "Citizen") == "Citizen"
    with pytest.raises(FieldProblem):
        check_value(field, "Citizen<script>")


def test_a_section_reads_only_chosen_subsections_rows_that_are_filled_and_checks_address_years() -> None:
    book = catalogue(1)
    assert book.version == 1 and [s.key for s in book.sections] == [
        "personal", "contact", "employment", "income", "position", "goals"]
    contact = book.section("contact")
    assert contact is not None
    form = {"reach-mobile": "0411 111 111", "reach-email": "ana@example.com", "address-street": "1 Harbour St",
            "address-suburb": "Sydney", "address-postcode": "2000", "address-years": "1"}
    answers, errors = read_section(contact, ["reach", "address", "previous"], form)
    assert list(errors) == ["previous-1-street"] and "cover 3 years" in errors["previous-1-street"]
    form |= {"previous-1-street": "9 Hill Rd", "previous-1-suburb": "Parramatta", "previous-1-postcode": "2150",
             "previous-1-years": "2"}
    answers, errors = read_section(contact, ["reach", "address", "previous"], form)
    assert errors == {} and answers["previous"] == [{"street": "9 Hill Rd", "suburb": "Parramatta",
                                                     "postcode": "2150", "years": "2"}]
    # a row begun is a row: its required fields are needed
    answers, errors = read_section(contact, ["reach", "address", "previous"], {**form, "previous-2-suburb": "Ryde"})
    assert set(errors) == {"previous-2-street", "previous-2-postcode", "previous-2-years"}
    # each message names its row, so the error summary says which one
    assert errors["previous-2-street"] == "Previous addresses 2: Enter street address"
    answers, errors = read_section(contact, ["reach", "address", "previous"], {**form, "previous-1-postcode": "21"})
    assert errors == {"previous-1-postcode": "Previous addresses 1: Postcode must be 4 digits"}
    # a subsection the flow left out is not read, nor required
    answers, errors = read_section(contact, ["reach"], {"reach-mobile": "0411 111 111",
                                                        "reach-email": "ana@example.com"})
    assert errors == {} and list(answers) == ["reach"]


def test_a_flow_names_real_sections() -> None:
    assert check_flow("Purchase", "First home", {"personal": ["about"]}) == {}
    assert set(check_flow("Spaceship", "", {})) == {"loan_type", "name", "sections"}
    assert check_flow("Purchase", "x", {"personal": ["nope"]}) == {"sections": "Choose sections from the list"}
    with pytest.raises(ValueError):
        catalogue(99)


def test_sealed_files_open_only_whole_under_their_own_id(tmp_path: Path) -> None:
    keys, data = tmp_path / "keys", tmp_path / "data"
    secret = b"%PDF-1.4 passport 1234"
    sha = vault.seal(data, keys, "cfile_01aaaaaaaaaaaaaaaaaaaaaaaa", secret)
    assert sha == hashlib.sha256(secret).hexdigest()
    stored = data / "client-files" / "cfile_01aaaaaaaaaaaaaaaaaaaaaaaa"
    assert secret not in stored.read_bytes() and stored.stat().st_mode & 0o777 == 0o600
    assert vault.unseal(data, keys, "cfile_01aaaaaaaaaaaaaaaaaaaaaaaa", sha) == secret
    # the same bytes under another id: the associated data does not match
    (data / "client-files" / "cfile_01bbbbbbbbbbbbbbbbbbbbbbbb").write_bytes(stored.read_bytes())
    with pytest.raises(vault.DamagedFile):
        vault.unseal(data, keys, "cfile_01bbbbbbbbbbbbbbbbbbbbbbbb", sha)
    # any flipped byte, anywhere after the header
    body = stored.read_bytes()
    for i in range(len(vault.MAGIC), len(body), 7):
        flipped = bytearray(body)
        flipped[i] ^= 0x80
        stored.write_bytes(bytes(flipped))
        with pytest.raises(vault.DamagedFile):
            vault.unseal(data, keys, "cfile_01aaaaaaaaaaaaaaaaaaaaaaaa", sha)
    stored.write_bytes(body)
    with pytest.raises(vault.DamagedFile):  # a recorded SHA-256 that does not match
        vault.unseal(data, keys, "cfile_01aaaaaaaaaaaaaaaaaaaaaaaa", "0" * 64)
    with pytest.raises(ValueError):
        vault.unseal(data, keys, "../../etc/passwd", sha)


def test_the_data_key_is_private_and_passcodes_are_kept_as_keyed_hashes(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    mac = vault.passcode_hmac(keys, "access_1", "123456")
    assert (keys / vault.KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert mac == vault.passcode_hmac(keys, "access_1", "123456")
    assert mac != hashlib.sha256(b"123456").hexdigest() and mac != vault.passcode_hmac(keys, "access_2", "123456")
    os.chmod(keys / vault.KEY_FILE, 0o644)
    vault.unlock(keys, None)  # as a node starting again: the key is read afresh
    with pytest.raises(PermissionError):
        vault.data_key(keys)


def test_with_a_key_passphrase_the_data_key_is_sealed_like_the_other_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    vault.unlock(keys, b"a long and careful passphrase")
    key = vault.data_key(keys)
    stored = (keys / vault.KEY_FILE).read_bytes()
    assert stored.startswith(b"{") and b"scrypt" in stored and base64.urlsafe_b64encode(key) not in stored
    vault.unlock(keys, b"a long and careful passphrase")
    assert vault.data_key(keys) == key
    vault.unlock(keys, b"the wrong passphrase entirely")
    with pytest.raises(KeyStoreError, match="wrong passphrase"):
        vault.data_key(keys)
    vault.unlock(keys, None)
    with pytest.raises(KeyStoreError, match="unlike the node's keys"):
        vault.data_key(keys)


def test_answers_read_as_people_write_them_dates_and_dollar_amounts() -> None:
    income = catalogue(1).section("income")
    assert income is not None
    answers, errors = read_section(income, ["income"], {"income-salary": "$95,000", "income-other": "12.5"})
    assert errors == {} and answers["income"] == {"salary": "95000.00", "other": "12.50"}
    assert readable(income, ["income"], answers)[0]["rows"] == [[
        ("Salary or wages per year, before tax", "$95,000.00"), ("Other income per year", "$12.50"),
        ("Where the other income comes from", "")]]
