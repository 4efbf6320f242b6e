"""The examples in docs/protocol.md are real: each one is valid, and each signature verifies.

An implementer copies the spec's examples into their own tests, so an example that the
reference code would refuse is a bug in the spec. A complete example of a message, a
document, an envelope header or an inner header is a ```json block right after a marker
naming its schema in ``schemas/``::

    <!-- example: referral-offer -->

A signed object (a flattened JWS) is marked with the ``envelope`` schema and, in
parentheses, what it carries: ``(discovery)``, ``(receipt)``, or nothing for an envelope.

Every marked example is validated against its JSON Schema (jsonschema) and through the
model (``protocol.models.validate``). Signed examples are verified with the keys of the
spec's Appendix B, and what they carry must equal the pretty-printed example beside them,
so the readable and the signed forms cannot drift apart.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from protocol import jws
from protocol.discovery import PeerKeys, verify_discovery
from protocol.encoding import b64u_decode, loads_object
from protocol.envelope import EnvelopeHeader, InnerHeader, digest, open_envelope
from protocol.errors import RemoteProtocolError
from protocol.jws import FlattenedJws
from protocol.keys import DecryptionKey, SigningKey, VerifyKey
from protocol.messages import DOCUMENT_MODELS, MESSAGE_MODELS, ReferralOffer
from protocol.models import WireModel, parse_ts, validate
from protocol.offers import check_offer
from protocol.receipts import verify_receipt
from protocol.wire import (
    TYP_DISCOVERY,
    TYP_ENVELOPE,
    TYP_INNER,
    TYP_RECEIPT,
    DocumentType,
    MessageType,
)

ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = ROOT / "docs" / "protocol.md"
SCHEMA_DIR = ROOT / "schemas"

#: Schema file stem -> the model that validates the same objects.
MODELS: dict[str, type[WireModel]] = {
    "envelope": FlattenedJws,
    "envelope-header": EnvelopeHeader,
    "inner-header": InnerHeader,
    **{t.value: model for t, model in MESSAGE_MODELS.items()},
    **{t.value: model for t, model in DOCUMENT_MODELS.items()},
}
#: What a signed example (``envelope (...)``) may carry; no qualifier is an envelope.
SIGNED_KINDS = {"discovery", "receipt"}

MARKER = re.compile(r"<!-- example: (?P<stem>[a-z-]+)(?: \((?P<carries>[a-z-]+)\))? -->")
BLOCK = re.compile(r"^```json\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Example:
    line: int
    stem: str
    carries: str | None
    text: str

    @property
    def data(self) -> dict[str, Any]:
        return loads_object(self.text, what=f"example at line {self.line}")

    def __str__(self) -> str:
        kind = f"{self.stem} ({self.carries})" if self.carries else self.stem
        return f"docs/protocol.md:{self.line} ({kind})"


@cache
def spec() -> str:
    assert SPEC_PATH.is_file(), f"{SPEC_PATH} is missing"
    return SPEC_PATH.read_text(encoding="utf-8")


@cache
def blocks() -> tuple[tuple[int, str | None, str], ...]:
    """Every ```json block: (line, the marker line right before it or None, body)."""
    text = spec()
    out = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        out.append((line, before if MARKER.fullmatch(before) else None, match.group("body")))
    return tuple(out)


@cache
def examples() -> tuple[Example, ...]:
    out = []
    for line, marker, body in blocks():
        if marker is None:
            continue
        match = MARKER.fullmatch(marker)
        assert match is not None
        out.append(Example(line, match["stem"], match["carries"], body.rstrip("\n")))
    return tuple(out)


def of(stem: str, carries: str | None = None) -> list[Example]:
    return [e for e in examples() if e.stem == stem and e.carries == carries]


def ids(items: list[Example]) -> list[str]:
    return [str(e) for e in items]


@cache
def schema(stem: str) -> dict[str, Any]:
    path = SCHEMA_DIR / f"{stem}.schema.json"
    assert path.is_file(), f"no schema {path.name} for the examples marked {stem!r}"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def assert_valid(stem: str, data: Any, where: object) -> WireModel:
    """Valid against schemas/<stem>.schema.json and through the model."""
    validator = jsonschema.Draft202012Validator(schema(stem))
    problems = [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator.iter_errors(data)
    ]
    assert not problems, f"{where} breaks schemas/{stem}.schema.json: {problems}"
    try:
        return validate(MODELS[stem], data, what=stem)
    except RemoteProtocolError as exc:
        pytest.fail(
            f"{where} is refused by the {MODELS[stem].__name__} model: {exc.message} {exc.detail}"
        )


# --- Appendix B: the example keys ------------------------------------------------------------


@dataclass(frozen=True)
class ExampleKeys:
    signing: dict[str, tuple[str, VerifyKey]]  # kid -> (node name, key)
    decryption: dict[str, DecryptionKey]
    node_ids: dict[str, str]  # node name -> node id


@cache
def appendix_keys() -> ExampleKeys:
    """The key table of Appendix B, each private value checked against its kid."""
    section = spec().split("## Appendix B.", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(
        r"^\| ([^|`]+?) \| ([A-Za-z0-9-]+) \| `([A-Za-z0-9_-]{43})` \| (.+) \|$",
        section,
        re.MULTILINE,
    )
    node_rows = re.findall(
        r"^\| ([^|`]+?) \| `([A-Za-z0-9_-]{43})` \| `[A-Z2-7-]{29}` \|$", section, re.M
    )
    nodes = dict(node_rows)
    assert len(rows) >= 8 and len(nodes) == 2, "Appendix B lost its key or node table?"
    signing: dict[str, tuple[str, VerifyKey]] = {}
    decryption: dict[str, DecryptionKey] = {}
    for name, kind, kid, private in rows:
        node = next(n for n in nodes if name.startswith(n.split()[0]))
        secret = b64u_decode(private.rsplit("`", 2)[-2])
        if kind == "Ed25519":
            key = SigningKey.from_seed(secret)
            assert key.kid == kid, f"Appendix B: {name}: the private value is not the key {kid}"
            signing[kid] = (node, key.public)
        else:
            dkey = (
                DecryptionKey.x25519(secret)
                if kind == "X25519"
                else DecryptionKey.mlkem768_x25519(secret)
            )
            assert dkey.kid == kid, f"Appendix B: {name}: the private value is not the key {kid}"
            decryption[kid] = dkey
    identities = {n: kid for kid, (n, _) in signing.items() if kid in nodes.values()}
    assert identities == nodes, (
        "Appendix B: each node id must be the kid of that node's identity key"
    )
    return ExampleKeys(signing, decryption, nodes)


@cache
def verified_discovery() -> dict[str, list[tuple[dict[str, Any], PeerKeys]]]:
    """Node id -> the spec's signed discovery documents of that node, verified."""
    out: dict[str, list[tuple[dict[str, Any], PeerKeys]]] = defaultdict(list)
    for example in of("envelope", "discovery"):
        doc, keys = verify_discovery(example.text.encode("utf-8"))
        out[doc.node_id].append((doc.wire(), keys))
    return out


def peer_keys_for(node_id: str, kid: str) -> PeerKeys:
    """A signed discovery document of the spec in which ``kid`` signs for ``node_id``."""
    for _, keys in verified_discovery().get(node_id, []):
        if kid in keys.signing:
            return keys
    pytest.fail(f"no signed discovery example of {node_id} lists {kid} as an active signing key")


def receipt_signer(raw: bytes) -> PeerKeys:
    """The key history of the node whose Appendix B key signed this receipt."""
    kid = jws.parse_flattened(raw, typ=TYP_RECEIPT).kid
    keys = appendix_keys()
    assert kid in keys.signing, f"receipt signed with {kid}, which is not in Appendix B"
    node = keys.signing[kid][0]
    history = {k: key for k, (n, key) in keys.signing.items() if n == node}
    return PeerKeys(
        node_id=keys.node_ids[node], name=node, inbox_url="", signing={}, all_signing=history,
        encryption=(), suites=(),
    )  # fmt: skip


def equals_an_example(data: dict[str, Any], stem: str, what: str) -> None:
    shown = [e.data for e in of(stem)]
    assert data in shown, (
        f"{what} is not one of the {stem} examples of the spec: {json.dumps(data, indent=1)}"
    )


# --- the examples themselves --------------------------------------------------------------


def test_markers_sit_right_before_a_json_block() -> None:
    lines = [line for line in spec().splitlines() if line.startswith("<!-- example")]
    malformed = [line for line in lines if not MARKER.fullmatch(line)]
    assert not malformed, f"markers that do not parse: {malformed}"
    assert len(lines) == len(examples()), (
        "an <!-- example: ... --> marker must be the line before a ```json block"
    )


def test_every_marked_stem_has_a_schema_and_a_model() -> None:
    unknown = sorted({e.stem for e in examples()} - set(MODELS))
    assert not unknown, f"examples marked with unknown schema names: {unknown}"
    bad = [
        str(e)
        for e in examples()
        if e.carries is not None and (e.stem != "envelope" or e.carries not in SIGNED_KINDS)
    ]
    assert not bad, (
        f"only envelope examples may say what they carry, and only {sorted(SIGNED_KINDS)}: {bad}"
    )


def test_there_is_an_example_of_every_message_document_and_header() -> None:
    stems = {e.stem for e in examples()}
    missing_messages = sorted(t.value for t in MessageType if t.value not in stems)
    missing_documents = sorted(t.value for t in DocumentType if t.value not in stems)
    assert not missing_messages, f"message types without an example: {missing_messages}"
    assert not missing_documents, f"document types without an example: {missing_documents}"
    schemas = {p.name.removesuffix(".schema.json") for p in SCHEMA_DIR.glob("*.schema.json")}
    assert schemas <= stems, f"schemas without an example: {sorted(schemas - stems)}"
    assert of("envelope"), "no complete envelope example"
    assert of("envelope", "discovery"), "no signed discovery document example"
    assert of("envelope", "receipt"), "no signed receipt example"


@pytest.mark.parametrize("example", examples(), ids=str)
def test_example_is_valid_against_its_schema_and_model(example: Example) -> None:
    assert_valid(example.stem, example.data, example)


def test_unmarked_json_blocks_are_not_complete_examples() -> None:
    """A block that validates as a message, document or header must be marked, so that
    this test checks it; the unmarked ones are fragments (a JWK, a key entry, an error body)."""
    unmarked = []
    for line, marker, body in blocks():
        if marker is not None:
            continue
        try:
            data = json.loads(body)
        except ValueError:
            continue
        for stem, model in MODELS.items():
            try:
                validate(model, data)
            except RemoteProtocolError:
                continue
            unmarked.append(
                f"docs/protocol.md:{line} looks like a {stem} example but has no marker"
            )
    assert not unmarked, unmarked


@pytest.mark.parametrize("example", of("referral-offer"), ids=str)
def test_offer_example_keeps_the_sharing_and_consent_rules(example: Example) -> None:
    offer = validate(ReferralOffer, example.data)
    check_offer(offer)  # raises field_not_allowed, consent_required or malformed


@pytest.mark.parametrize("example", of("envelope", "discovery"), ids=str)
def test_signed_discovery_example_verifies_and_matches_its_readable_form(example: Example) -> None:
    doc, keys = verify_discovery(example.text.encode("utf-8"))
    assert keys.identity is not None and keys.identity.kid == doc.node_id
    identity = appendix_keys().signing.get(doc.node_id)
    assert identity is not None, (
        f"{example}: the identity key of {doc.node_id} is not in Appendix B"
    )
    equals_an_example(
        loads_object(jws.parse_flattened(example.text.encode(), typ=TYP_DISCOVERY).payload),
        "discovery",
        f"{example}: its payload",
    )


@pytest.mark.parametrize("example", of("envelope", "receipt"), ids=str)
def test_signed_receipt_example_verifies_and_matches_its_readable_form(example: Example) -> None:
    raw = example.text.encode("utf-8")
    receipt = verify_receipt(raw, keys=receipt_signer(raw))
    equals_an_example(receipt.wire(), "receipt", f"{example}: its payload")


def test_receipts_inside_error_body_examples_verify() -> None:
    checked = 0
    for line, _, body in blocks():
        data = json.loads(body)
        if not (isinstance(data, dict) and "error" in data and "receipt" in data):
            continue
        if data["receipt"].startswith("<"):
            continue  # the template of the error body, not an example
        raw = data["receipt"].encode("utf-8")
        receipt = verify_receipt(raw, keys=receipt_signer(raw))
        assert receipt.disposition == "rejected", (
            f"docs/protocol.md:{line}: an error body carries a rejected receipt"
        )
        assert receipt.error is not None and receipt.error.code == data["error"]["code"], (
            f"docs/protocol.md:{line}: the receipt names another error than the body"
        )
        equals_an_example(
            receipt.wire(), "receipt", f"docs/protocol.md:{line}: the receipt's payload"
        )
        checked += 1
    assert checked, "no error body example carries a signed receipt"


@pytest.mark.parametrize(
    ("example", "member"),
    [(e, "requester_discovery") for e in of("connection-request")]
    + [(e, "discovery") for e in of("key-rotation")],
    ids=lambda v: str(v) if isinstance(v, Example) else v,
)
def test_discovery_inside_a_message_example_verifies(example: Example, member: str) -> None:
    doc, _ = verify_discovery(example.data[member].encode("utf-8"))
    equals_an_example(doc.wire(), "discovery", f"{example}: {member}")


@pytest.mark.parametrize("example", of("envelope"), ids=str)
def test_envelope_example_opens_with_the_appendix_keys(example: Example) -> None:
    raw = example.text.encode("utf-8")
    outer = jws.parse_flattened(raw, typ=TYP_ENVELOPE)
    header = assert_valid("envelope-header", outer.header, f"{example}: its protected header")
    assert isinstance(header, EnvelopeHeader)
    sender_keys = peer_keys_for(header.rn_from, header.kid)
    opened = open_envelope(
        raw,
        me=header.rn_to,
        now=parse_ts(header.rn_iat),
        peer_keys=lambda node_id: sender_keys if node_id == header.rn_from else None,
        decryption_keys=appendix_keys().decryption,
    )
    equals_an_example(outer.header, "envelope-header", f"{example}: its outer header")
    inner = jws.parse_compact(opened.inner_jws, typ=TYP_INNER)
    equals_an_example(inner.header, "inner-header", f"{example}: its inner header")
    equals_an_example(
        opened.message.wire(), opened.parsed.message_type.value, f"{example}: its message"
    )
    # The spec's receipt for this envelope names these exact bytes.
    receipts = [e.data for e in of("receipt") if e.data["envelope_id"] == header.rn_id]
    assert receipts, f"{example}: no receipt example for envelope {header.rn_id}"
    assert all(r["envelope_sha256"] == digest(raw) for r in receipts), (
        f"{example}: receipt names other bytes"
    )
