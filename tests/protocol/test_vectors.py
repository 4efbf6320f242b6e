"""The published test vectors (docs/vectors/*.json), read back: our code must reproduce
every expected output and refuse every must-reject input with its code.

Where a value can be computed without our code (RFC 8037 keys, thumbprints, key
derivation, fingerprints, Ed25519 signatures), it is, so a bug shared by the code and the
vector generator still shows here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from protocol_support import NODES, PEERS, VECTORS, load_vector

from node.codegen.vector_inputs import referral_offer
from protocol.discovery import verify_discovery
from protocol.encoding import b64u_decode, b64u_encode, loads_strict
from protocol.envelope import Routing, digest, open_envelope, sign_message, sign_outer
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.invitations import (
    InvitationState,
    check_redemption,
    make_invitation,
    parse_referral,
    referral_key,
    referral_url,
    secret_hash,
)
from protocol.keys import DecryptionKey, SigningKey, fingerprint_of, jwk_thumbprint
from protocol.messages import Invitation, ReferralOffer
from protocol.models import parse_ts, validate
from protocol.offers import check_offer, present_fields
from protocol.receipts import make_receipt, verify_receipt
from protocol.replay import classify
from protocol.suites import SuiteId, hpke_info
from protocol.wire import MAX_ENVELOPE_AGE_S, Disposition, ErrorCode, MessageType

RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

KEYS = load_vector("keys.json")


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def node_of(label: str) -> dict[str, Any]:
    return KEYS["nodes"][label]


def code_of(action: Any) -> ErrorCode:
    with pytest.raises(RemoteProtocolError) as caught:
        action()
    return caught.value.code


def test_every_vector_file_is_checked_here() -> None:
    checked = {
        "keys.json", "discovery.json", "envelope-signing.json", "envelopes-reject.json",
        "receipts.json", "invitations.json", "encoding.json", "envelopes-decrypt-only.json",
        "offers.json",
        "enterprise-partner.json",  # its own file: test_enterprise_partner.py
    }  # fmt: skip
    assert {p.name for p in VECTORS.glob("*.json")} == checked


# --- keys ------------------------------------------------------------------------------


def test_node_a_identity_is_the_rfc8037_key() -> None:
    identity = node_of("A")["identity"]
    assert identity["private_jwk"] == {
        "kty": "OKP",
        "crv": "Ed25519",
        "d": RFC8037_D,
        "x": RFC8037_X,
    }
    assert node_of("A")["node_id"] == RFC8037_THUMBPRINT == identity["kid"]
    # RFC 7638 by hand: the required members, sorted, no whitespace.
    canonical = f'{{"crv":"Ed25519","kty":"OKP","x":"{RFC8037_X}"}}'.encode()
    assert b64u(hashlib.sha256(canonical).digest()) == RFC8037_THUMBPRINT


@pytest.mark.parametrize("label", ["A", "B", "C"])
def test_keys_node_ids_and_fingerprints(label: str) -> None:
    node = node_of(label)
    for role in ("identity", "signing"):
        entry = node[role]
        key = SigningKey.from_seed(b64u_decode(entry["private_jwk"]["d"]))
        assert key.public.jwk() == entry["public_jwk"]
        assert key.kid == entry["kid"] == jwk_thumbprint(entry["public_jwk"])
        if entry["derived_from"] != "RFC 8037 Appendix A.1":
            seed = hashlib.shake_256(
                b"refnode test vector\x00" + entry["derived_from"].encode()
            ).digest(32)
            assert entry["private_jwk"]["d"] == b64u(seed)
    for role, size in (("x25519", 32), ("mlkem768x25519", 32)):
        entry = node[role]
        seed = hashlib.shake_256(
            b"refnode test vector\x00" + entry["derived_from"].encode()
        ).digest(size)
        assert entry["private_jwk"]["d"] == b64u(seed)
        key = DecryptionKey(entry["private_jwk"]["crv"], seed)
        assert key.public.jwk() == entry["public_jwk"]
        assert key.kid == entry["kid"]
    assert node["node_id"] == node["identity"]["kid"]
    digest15 = hashlib.sha256(node["node_id"].encode()).digest()[:15]
    text = base64.b32encode(digest15).decode()
    assert node["fingerprint"] == "-".join(text[i : i + 4] for i in range(0, 24, 4))
    assert fingerprint_of(node["node_id"]) == node["fingerprint"]
    assert NODES[label].node_id == node["node_id"]


def test_jwk_thumbprints() -> None:
    assert len(KEYS["thumbprints"]) >= 10
    for case in KEYS["thumbprints"]:
        jwk = case["jwk"]
        by_hand = json.dumps({k: jwk[k] for k in ("crv", "kty", "x")}, separators=(",", ":"))
        assert b64u(hashlib.sha256(by_hand.encode()).digest()) == case["thumbprint"]
        assert jwk_thumbprint(jwk) == case["thumbprint"]


def test_key_derivation_example() -> None:
    example = KEYS["derivation"]
    seed = hashlib.shake_256(b"refnode test vector\x00" + example["example_label"].encode()).digest(
        32
    )
    assert example["example_bytes"] == b64u(seed)


# --- discovery -------------------------------------------------------------------------


def test_discovery_documents() -> None:
    vectors = load_vector("discovery.json")
    assert len(vectors["documents"]) == 3
    for case in vectors["documents"]:
        expected = case["expected"]
        doc, keys = verify_discovery(case["signed"].encode(), expected_node_id=expected["node_id"])
        assert doc.wire() == case["document"]
        assert keys.node_id == expected["node_id"] == node_of(case["node"])["node_id"]
        assert fingerprint_of(keys.node_id) == expected["fingerprint"]
        assert (keys.name, keys.inbox_url) == (expected["name"], expected["inbox_url"])
        assert sorted(keys.signing) == expected["signing_kids"]
        assert [[s.value, k.kid] for s, k in keys.encryption] == expected["encryption"]
        assert NODES[case["node"]].discovery().decode() == case["signed"]  # deterministic
        # The identity key, not our code, says the signature is good.
        signed = json.loads(case["signed"])
        Ed25519PublicKey.from_public_bytes(
            unb64u(node_of(case["node"])["identity"]["public_jwk"]["x"])
        ).verify(unb64u(signed["signature"]), f"{signed['protected']}.{signed['payload']}".encode())


def test_discovery_must_reject() -> None:
    cases = load_vector("discovery.json")["must_reject"]
    assert cases
    for case in cases:
        code = code_of(
            lambda c=case: verify_discovery(
                c["signed"].encode(), expected_node_id=c["expected_node_id"]
            )
        )
        assert code.value == case["error"], case["name"]


# --- envelopes -------------------------------------------------------------------------


def test_envelope_signing() -> None:
    vector = load_vector("envelope-signing.json")
    a, b = NODES["A"], NODES["B"]
    assert vector["message"] == referral_offer().wire()
    routing = Routing(
        MessageType(vector["message_type"]),
        "env-0001",
        a.node_id,
        b.node_id,
        parse_ts(vector["now"]),
    )
    inner = vector["inner"]
    assert sign_message(referral_offer(), routing, a.signing).decode() == inner["compact"]
    assert inner["compact"] == f"{inner['signing_input']}.{inner['signature']}"
    protected, payload = inner["signing_input"].split(".")
    assert json.loads(unb64u(protected)) == inner["protected_header"]
    assert (
        inner["protected_header"]["rn_to"] == b.node_id
        and inner["protected_header"]["kid"] == a.signing.kid
    )
    assert unb64u(payload).decode() == inner["payload_json"]
    assert json.loads(inner["payload_json"]) == vector["message"]
    outer = vector["outer"]
    signed = sign_outer(
        bytes.fromhex(outer["payload_hex"]),
        routing,
        suite=SuiteId(outer["protected_header"]["rn_suite"]),
        enc_kid=outer["protected_header"]["rn_enc_kid"],
        signing_key=a.signing,
    )
    assert signed.decode() == outer["envelope"]
    assert digest(signed) == outer["envelope_sha256"]
    assert json.loads(outer["envelope"])["protected"] == outer["signing_input"].split(".")[0]
    assert outer["protected_header"]["rn_enc_kid"] == node_of("B")["x25519"]["kid"]
    assert hpke_info(a.node_id, b.node_id, "env-0001").hex() == vector["hpke_info_hex"]
    assert bytes.fromhex(vector["hpke_info_hex"]) == b"\x00".join(
        [b"refnode/1 payload", a.node_id.encode(), b.node_id.encode(), b"env-0001"]
    )
    public = Ed25519PublicKey.from_public_bytes(unb64u(node_of("A")["signing"]["public_jwk"]["x"]))
    for part in (inner, outer):
        public.verify(unb64u(part["signature"]), part["signing_input"].encode())


def test_the_signing_vectors_envelope_does_not_open() -> None:
    """Its payload is a placeholder: the file says so (outer.if_delivered), so that nobody
    reads it, or the receipts that name it, as an envelope a receiver accepts."""
    vector = load_vector("envelope-signing.json")
    delivered = vector["outer"]["if_delivered"]
    receiver = NODES[delivered["receiver"]]
    assert delivered["error"] == "decrypt_failed"
    assert code_of(
        lambda: open_envelope(
            vector["outer"]["envelope"].encode(),
            me=receiver.node_id,
            now=parse_ts(delivered["now"]),
            peer_keys={NODES["A"].node_id: PEERS["A"]}.get,
            decryption_keys=receiver.decryption_keys(),
        )
    ).value == delivered["error"]
    assert "not a verdict" in load_vector("receipts.json")["description"]


REJECTS = load_vector("envelopes-reject.json")


@pytest.mark.parametrize("case", REJECTS["must_reject"], ids=lambda c: c["name"])
def test_envelope_must_reject(case: dict[str, Any]) -> None:
    receiver = NODES[case["receiver"]]
    known = {NODES[label].node_id: PEERS[label] for label in case["known_peers"]}
    with pytest.raises(RemoteProtocolError) as caught:
        open_envelope(
            case["envelope"].encode(),
            me=receiver.node_id,
            now=parse_ts(case["now"]),
            peer_keys=known.get,
            decryption_keys=receiver.decryption_keys(),
        )
    assert caught.value.code.value == case["error"]
    for key, value in case.get("detail", {}).items():
        assert caught.value.detail[key] == value


def test_envelope_must_reject_covers_the_issue_list() -> None:
    codes = {case["error"] for case in REJECTS["must_reject"]}
    assert codes >= {
        "bad_signature", "wrong_recipient", "expired", "not_yet_valid", "unknown_sender",
        "unsupported_version",
    }  # fmt: skip


SEALED = load_vector("envelopes-decrypt-only.json")


@pytest.mark.parametrize("vector", SEALED["vectors"], ids=lambda v: v["suite"])
def test_decrypt_only_envelopes_open_to_the_message(vector: dict[str, Any]) -> None:
    a, b = NODES[SEALED["sender"]], NODES[SEALED["recipient"]]
    raw = vector["envelope"].encode()
    assert digest(raw) == vector["envelope_sha256"]
    header = json.loads(unb64u(json.loads(vector["envelope"])["protected"]))
    assert (header["rn_suite"], header["rn_enc_kid"]) == (vector["suite"], vector["enc_kid"])
    assert vector["inner_jws"] == load_vector("envelope-signing.json")["inner"]["compact"]
    assert len(vector["opens_at"]) == 5
    for case in vector["opens_at"]:
        now = parse_ts(case["now"])

        def open_it(now: Any = now) -> Any:
            return open_envelope(
                raw, me=b.node_id, now=now, peer_keys={a.node_id: PEERS["A"]}.get,
                decryption_keys=b.decryption_keys(),
            )  # fmt: skip

        if case["result"] == "ok":
            opened = open_it()
            assert opened.message.wire() == vector["message"]
            assert opened.inner_jws.decode() == vector["inner_jws"]
            assert opened.parsed.message_type.value == vector["message_type"]
            assert not opened.introduction
        else:
            assert code_of(open_it).value == case["result"]


OFFERS = load_vector("offers.json")


def _check_offer_json(message: dict[str, Any]) -> None:
    check_offer(validate(ReferralOffer, message, what="referral-offer"))


def test_the_envelope_vectors_carry_a_valid_offer() -> None:
    """An "ok" vector's message passes the sharing and consent checks, which a receiver
    applies after opening: a strict receiver would otherwise refuse it (issue 15, gap 2)."""
    message = load_vector("envelope-signing.json")["message"]
    assert OFFERS["accept"][0]["message"] == message
    for vector in SEALED["vectors"]:
        assert vector["message"] == message
    _check_offer_json(message)
    present = present_fields(validate(ReferralOffer, message))
    assert present - {"deal.title"} <= set(message["shared_fields"])
    assert {"deal.amount", "deal.deal_type", "deal.summary", "contacts.phone"} <= present


def test_an_offer_without_an_amount_need_not_share_it() -> None:
    """A deal with neither amount nor currency carries no deal.amount: the offer is valid
    without sharing it, and sharing it would name a field that is absent (allowed)."""
    message = json.loads(json.dumps(load_vector("envelope-signing.json")["message"]))
    del message["deal"]["amount"], message["deal"]["currency"]
    message["shared_fields"].remove("deal.amount")
    _check_offer_json(message)
    assert "deal.amount" not in present_fields(validate(ReferralOffer, message))


@pytest.mark.parametrize("case", OFFERS["accept"], ids=lambda c: c["name"])
def test_offers_accept(case: dict[str, Any]) -> None:
    _check_offer_json(case["message"])


@pytest.mark.parametrize("case", OFFERS["must_reject"], ids=lambda c: c["name"])
def test_offers_must_reject(case: dict[str, Any]) -> None:
    if case["error"] != "malformed":
        validate(ReferralOffer, case["message"])  # valid as a message: the rule is 14.5's
    assert code_of(lambda: _check_offer_json(case["message"])).value == case["error"]


def test_offers_must_reject_covers_each_check() -> None:
    assert {c["error"] for c in OFFERS["must_reject"]} == {
        "malformed", "field_not_allowed", "consent_required",
    }  # fmt: skip


def _receive(
    raw: bytes, now: Any, accepted: dict[tuple[str, str], tuple[str, bytes]]
) -> bytes | str:
    """A receiver B as the spec orders it: parse, step R, open (8.5), then 8.7's
    de-duplication. Returns the receipt it answers with, or the error code."""
    b = NODES["B"]
    header = json.loads(unb64u(json.loads(raw)["protected"]))
    key = (header["rn_from"], header["rn_id"])
    sha = digest(raw)
    if key in accepted and accepted[key][0] == sha:  # step R
        return accepted[key][1]
    try:
        opened = open_envelope(
            raw, me=b.node_id, now=now, peer_keys={NODES["A"].node_id: PEERS["A"]}.get,
            decryption_keys=b.decryption_keys(),
        )  # fmt: skip
        classify(accepted.get(key, (None,))[0], sha)  # 8.7 step 1: raises replayed
    except RemoteProtocolError as exc:
        return exc.code.value
    receipt = make_receipt(
        disposition=Disposition.ACCEPTED, envelope_id=header["rn_id"], envelope_sha256=sha,
        recipient=b.node_id, sender=opened.parsed.header.rn_from, now=now,
        signing_key=b.signing,
    )  # fmt: skip
    accepted[key] = (sha, receipt)
    return receipt


def test_replay_sequence_with_real_sealed_envelopes() -> None:
    """Issue 15, gap 3: replayed is decided after opening, so both envelopes must open."""
    replay = SEALED["replay"]
    envelopes = {name: replay[name].encode() for name in ("first", "second")}
    for name, raw in envelopes.items():
        assert digest(raw) == replay[f"{name}_sha256"]
        opened = open_envelope(
            raw, me=NODES["B"].node_id, now=parse_ts(replay["sequence"][0]["now"]),
            peer_keys={NODES["A"].node_id: PEERS["A"]}.get,
            decryption_keys=NODES["B"].decryption_keys(),
        )  # fmt: skip
        assert opened.message.wire() == replay["message"]
        assert opened.parsed.header.rn_id == replay["envelope_id"]
    assert envelopes["first"] != envelopes["second"]
    accepted: dict[tuple[str, str], tuple[str, bytes]] = {}
    answers: dict[int, bytes | str] = {}
    for step in replay["sequence"]:
        raw = envelopes[step["deliver"]]
        got = _receive(raw, parse_ts(step["now"]), accepted)
        answers[step["step"]] = got
        if step["result"] == "accepted":
            assert isinstance(got, bytes)
            receipt = verify_receipt(got, keys=PEERS["B"])
            assert receipt.disposition is Disposition.ACCEPTED
            assert receipt.envelope_sha256 == digest(raw)
        elif step["result"] == "original_receipt":
            assert got == answers[step["receipt_of"]], f"step {step['step']}"
        else:
            assert got == step["result"], f"step {step['step']}"
    assert [s["result"] for s in replay["sequence"]].count("replayed") == 1


def test_decrypt_only_envelopes_cover_every_suite() -> None:
    assert sorted(v["suite"] for v in SEALED["vectors"]) == sorted(s.value for s in SuiteId)


# --- receipts --------------------------------------------------------------------------


def test_receipts() -> None:
    vector = load_vector("receipts.json")
    envelope = load_vector("envelope-signing.json")["outer"]
    a, b = NODES["A"], NODES[vector["signer"]]
    for disposition, case in vector["receipts"].items():
        payload = case["payload"]
        named = case["envelope"].encode() if "envelope" in case else envelope["envelope"].encode()
        receipt = verify_receipt(
            case["receipt"].encode(),
            keys=PEERS["B"],
            envelope_id=json.loads(unb64u(json.loads(named)["protected"]))["rn_id"],
            envelope_sha256=digest(named),
            sender=a.node_id,
        )
        assert receipt.wire() == payload
        assert payload["disposition"] == disposition and payload["from"] == b.node_id
        error = payload.get("error")
        again = make_receipt(
            envelope_id=payload["envelope_id"],
            envelope_sha256=payload["envelope_sha256"],
            recipient=payload["from"],
            sender=payload["to"],
            disposition=Disposition(disposition),
            now=parse_ts(payload["received_at"]),
            signing_key=b.signing,
            error=RemoteProtocolError(ErrorCode(error["code"]), error["message"])
            if error
            else None,
        )
        assert again.decode() == case["receipt"]  # exact bytes
    assert vector["receipts"]["rejected"]["payload"]["error"]["code"] == "expired"


def test_the_rejected_receipt_is_true() -> None:
    """Issue 15, gap 8: it said expired for an envelope that was not. The envelope it
    names must be refused as expired by B at the receipt's time, and not a second earlier
    than its rn_iat + MAX_ENVELOPE_AGE_S."""
    case = load_vector("receipts.json")["receipts"]["rejected"]
    raw = case["envelope"].encode()
    assert digest(raw) == case["payload"]["envelope_sha256"]
    received_at = parse_ts(case["payload"]["received_at"])

    def open_at(now: Any) -> Any:
        return open_envelope(
            raw, me=NODES["B"].node_id, now=now, peer_keys={NODES["A"].node_id: PEERS["A"]}.get,
            decryption_keys=NODES["B"].decryption_keys(),
        )  # fmt: skip

    assert code_of(lambda: open_at(received_at)) == ErrorCode.EXPIRED
    iat = parse_ts(json.loads(unb64u(json.loads(raw)["protected"]))["rn_iat"])
    assert case["payload"]["error"]["message"].startswith(f"created {case_ts(iat)}")
    # At its last valid moment it passes the time checks (then fails only on its placeholder).
    assert code_of(lambda: open_at(iat + timedelta(seconds=MAX_ENVELOPE_AGE_S))) == (
        ErrorCode.DECRYPT_FAILED
    )


def case_ts(moment: Any) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_receipts_must_reject() -> None:
    cases = load_vector("receipts.json")["must_reject"]
    assert len(cases) == 3
    for case in cases:
        code = code_of(
            lambda c=case: verify_receipt(
                c["receipt"].encode(),
                keys=PEERS["B"],
                envelope_sha256=c.get("expected_envelope_sha256"),
            )
        )
        assert code.value == case["error"], case["name"]


# --- invitations -----------------------------------------------------------------------


def test_invitation() -> None:
    vector = load_vector("invitations.json")
    given = vector["input"]
    secret = bytes.fromhex(given["secret_hex"])
    inv = make_invitation(
        base_url=given["base_url"],
        node_id=given["node_id"],
        invitation_id=given["invitation_id"],
        secret=secret,
    )
    assert inv.wire() == vector["invitation"]
    assert referral_url(inv) == vector["referral_url"]
    assert referral_key(inv) == vector["referral_key"] == "rnk1_" + b64u(secret)
    assert vector["referral_url"] == (
        f"https://a.refnode.example/refnode/v1/invitations/{given['invitation_id']}?node={given['node_id']}"
    )
    by_hand = b64u(hashlib.sha256(b"refnode invitation\x00" + secret).digest())
    assert secret_hash(inv.secret) == vector["secret_hash"] == by_hand
    assert parse_referral(vector["referral_url"], vector["referral_key"]) == inv
    assert parse_referral(f"  {vector['referral_url']}\n", f" {vector['referral_key']} ") == inv
    assert vector["fingerprint"] == fingerprint_of(given["node_id"])
    # nothing is made of a URL with a trailing '/' or a secret that is not 32 bytes
    for base_url, size in ((given["base_url"] + "/", 32), (given["base_url"], 31), (given["base_url"], 33)):
        with pytest.raises(ValueError):
            make_invitation(base_url=base_url, node_id=given["node_id"], invitation_id=given["invitation_id"],
                            secret=bytes(size))


def test_invitation_redemption() -> None:
    redemption = load_vector("invitations.json")["redemption"]
    results = []
    for case in redemption["cases"]:

        def redeem(c: dict[str, Any] = case) -> None:
            check_redemption(
                stored_hash=redemption["stored_hash"],
                state=InvitationState(c["state"]),
                expires_at=parse_ts(redemption["expires_at"]),
                presented_secret=c["presented_secret"],
                now=parse_ts(c["now"]),
            )

        if case["error"] is None:
            redeem()
        else:
            assert code_of(redeem).value == case["error"]
        results.append(case["error"])
    assert results[0] is None and len(set(results)) == len(results)


def test_invitation_parse_must_reject() -> None:
    cases = load_vector("invitations.json")["parse_must_reject"]
    assert cases
    for case in cases:
        assert code_of(lambda c=case: parse_referral(c["url"], c["key"])).value == case["error"]


def test_a_trailing_slash_is_refused_not_normalised() -> None:
    """Issue 15, gap 7: the input had base_url 'https://a.refnode.example/' (which 11.1
    forbids) and the output silently dropped the '/'."""
    vector = load_vector("invitations.json")
    assert not vector["input"]["base_url"].endswith("/")
    assert vector["invitation"]["base_url"] == vector["input"]["base_url"]
    (slashed,) = [c for c in vector["parse_must_reject"] if "trailing" in c.get("name", "")]
    assert "//refnode/v1/invitations/" in slashed["url"]
    for case in vector["document_must_reject"]:
        assert code_of(lambda c=case: validate(Invitation, c["invitation"])).value == case["error"]
    with pytest.raises(ValueError):
        make_invitation(
            base_url=vector["input"]["base_url"] + "/", node_id=vector["input"]["node_id"],
            invitation_id="inv-0001", secret=bytes(32),
        )  # fmt: skip


# --- strict encodings ------------------------------------------------------------------


def test_base64url() -> None:
    vector = load_vector("encoding.json")["base64url"]
    for case in vector["accept"]:
        raw = bytes.fromhex(case["hex"])
        assert b64u_decode(raw.decode()).hex() == case["decoded_hex"]
        assert b64u_encode(bytes.fromhex(case["decoded_hex"])) == case["text"]
    for case in vector["reject"]:
        text = bytes.fromhex(case["hex"]).decode()
        assert code_of(lambda t=text: b64u_decode(t)).value == case["error"], case


def test_strict_json() -> None:
    vector = load_vector("encoding.json")["json"]
    for case in vector["accept"]:
        assert loads_strict(bytes.fromhex(case["hex"])) == case["value"]
        # what the reader accepts is not yet a valid message: null is refused one level up
        # (3.2, 'No null'), as a member of a message of a newer minor, whose unknown members
        # are otherwise dropped
        if isinstance(case["value"], dict):
            offer = referral_offer().wire() | case["value"]
            if "in_a_message" in case:
                assert code_of(lambda o=offer: validate(ReferralOffer, o, lenient=True)).value == (
                    case["in_a_message"]
                )
            else:
                assert validate(ReferralOffer, offer, lenient=True) is not None
        assert ("in_a_message" in case) == ("null" in case["text"]), case
    assert any("in_a_message" in case for case in vector["accept"])
    assert "accepts null" in load_vector("encoding.json")["description"]
    for case in vector["reject"]:
        with pytest.raises(ProtocolError) as caught:
            loads_strict(bytes.fromhex(case["hex"]))
        assert caught.value.code.value == case["error"], case


def test_a_damaged_referral_url_is_refused_saying_which_part() -> None:
    """What a person pastes: each damage is invitation_invalid, and the message names the
    part that is wrong, with what a referral URL looks like."""
    vector = load_vector("invitations.json")
    url, key = vector["referral_url"], vector["referral_key"]
    base, _, rest = url.partition("/refnode/v1/invitations/")
    invitation_id, _, query = rest.partition("?")
    damaged = {
        "http://[": "not a referral URL;",
        "ftp" + url[url.index(":"):]: "it has no /refnode/v1/invitations/",
        base + "/refnode/v1/invite/" + rest: "it has no /refnode/v1/invitations/",
        f"{base}/refnode/v1/invitations/{invitation_id}": "its node id (after ?node=) is cut short or changed",
        f"{base}/refnode/v1/invitations/{invitation_id}?node=": "its node id (after ?node=) is cut short or changed",
        f"{base}/refnode/v1/invitations/{invitation_id}?{query[:-3]}": "its node id (after ?node=) is cut short",
        f"{base}/refnode/v1/invitations/?{query}": "its invitation id (after /invitations/) is cut short",
    }
    for pasted, says in damaged.items():
        with pytest.raises(RemoteProtocolError) as caught:
            parse_referral(pasted, key)
        assert caught.value.code.value == "invitation_invalid", pasted
        message = str(caught.value)
        assert says in message and "a referral URL looks like https://their-node.example" in message, (pasted, message)
    # the URL's own path before the marker is part of the address, the last marker ends it
    inv = parse_referral(url.replace(base, base + "/refnode"), key)
    assert inv.base_url == base + "/refnode"
    inv = parse_referral(url.replace(base, base + "/refnode/v1/invitations/old"), key)
    assert (inv.base_url, inv.invitation_id) == (base + "/refnode/v1/invitations/old", invitation_id)
