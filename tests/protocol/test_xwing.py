"""The hybrid suite is X-Wing, in the form every X-Wing library loads.

The private key of an MLKEM768-X25519 key is the 32-byte X-Wing seed
(draft-connolly-cfrg-xwing-kem). These tests compute X-Wing from its definition (SHAKE256
expansion, ML-KEM-768 and X25519 primitives, the SHA3-256 combiner) and the HPKE key
schedule from RFC 9180, without our ``protocol.suites``, and check that:

- our key code expands the draft's own test vector seed to the draft's public key;
- the draft's ciphertext decapsulates to the draft's shared secret under the definition;
- the decrypt-only hybrid envelope opens with that definition and RFC 9180, so what we
  seal is HPKE with KEM 0x647A as draft-ietf-hpke-pq defines it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from protocol_support import NODES, load_vector

from protocol.encoding import b64u_decode, loads_object
from protocol.keys import DecryptionKey, xwing_expand
from protocol.suites import SuiteId, hpke_info

XWING = load_vector("keys.json")["xwing"]
LABEL = bytes.fromhex("5c2e2f2f5e5c")  # XWingLabel, "\./" "/^\"
SPEC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _expand(sk: bytes) -> tuple[mlkem.MLKEM768PrivateKey, x25519.X25519PrivateKey]:
    expanded = hashlib.shake_256(sk).digest(96)
    return (
        mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64]),
        x25519.X25519PrivateKey.from_private_bytes(expanded[64:]),
    )


def xwing_decapsulate(ct: bytes, sk: bytes) -> bytes:
    sk_m, sk_x = _expand(sk)
    ct_m, ct_x = ct[:1088], ct[1088:]
    ss_m = sk_m.decapsulate(ct_m)
    ss_x = sk_x.exchange(x25519.X25519PublicKey.from_public_bytes(ct_x))
    pk_x = sk_x.public_key().public_bytes_raw()
    return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + LABEL).digest()


def hpke_open_xwing_chacha(sealed: bytes, sk: bytes, info: bytes) -> bytes:
    """RFC 9180 base mode, single shot, KEM 0x647A, HKDF-SHA256, ChaCha20Poly1305."""
    suite_id = b"HPKE" + bytes.fromhex("647a00010003")

    def extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
        mac = hmac.HMAC(salt or bytes(32), hashes.SHA256())
        mac.update(b"HPKE-v1" + suite_id + label + ikm)
        return mac.finalize()

    def expand(prk: bytes, label: bytes, ctx: bytes, length: int) -> bytes:
        full = length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + ctx
        return HKDFExpand(hashes.SHA256(), length, full).derive(prk)

    enc, ciphertext = sealed[:1120], sealed[1120:]
    shared = xwing_decapsulate(enc, sk)  # X-Wing's secret is HPKE's shared_secret as is
    context = b"\x00" + extract(b"", b"psk_id_hash", b"") + extract(b"", b"info_hash", info)
    secret = extract(shared, b"secret", b"")
    key = expand(secret, b"key", context, 32)
    nonce = expand(secret, b"base_nonce", context, 12)
    return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, b"")


def test_our_keys_expand_the_draft_test_vector_seed_to_its_public_key() -> None:
    vector = XWING["draft_test_vector"]
    key = DecryptionKey.mlkem768_x25519(bytes.fromhex(vector["sk_hex"]))
    assert key.public.raw.hex() == vector["pk_hex"]
    assert len(key.public.jwk()["x"]) == 1622


def test_the_draft_ciphertext_decapsulates_to_its_shared_secret() -> None:
    vector = XWING["draft_test_vector"]
    ss = xwing_decapsulate(bytes.fromhex(vector["ct_hex"]), bytes.fromhex(vector["sk_hex"]))
    assert ss.hex() == vector["ss_hex"]


def test_the_published_expansion_is_shake256_of_the_seed() -> None:
    case = XWING["expansion"]
    sk = bytes.fromhex(case["sk_hex"])
    expanded = hashlib.shake_256(sk).digest(96)
    assert case["shake256_96_hex"] == expanded.hex()
    assert case["mlkem768_d_hex"] + case["mlkem768_z_hex"] == expanded[:64].hex()
    assert case["x25519_scalar_hex"] == expanded[64:].hex()
    sk_m, sk_x = _expand(sk)
    public = sk_m.public_key().public_bytes_raw() + sk_x.public_key().public_bytes_raw()
    assert case["public_hex"] == public.hex()
    b_hybrid = load_vector("keys.json")["nodes"]["B"]["mlkem768x25519"]
    assert b64u_decode(b_hybrid["private_jwk"]["d"]) == sk  # d is the 32-byte seed
    assert b64u_decode(b_hybrid["public_jwk"]["x"]) == public
    assert b"".join(xwing_expand(sk)) == expanded


def test_the_hybrid_decrypt_only_envelope_opens_by_x_wing_and_rfc_9180() -> None:
    doc = load_vector("envelopes-decrypt-only.json")
    (vector,) = [v for v in doc["vectors"] if v["suite"] == SuiteId.MLKEM768X25519_CHACHA.value]
    envelope = loads_object(vector["envelope"].encode())
    header = loads_object(b64u_decode(envelope["protected"]))
    sealed = b64u_decode(envelope["payload"])
    info = hpke_info(header["rn_from"], header["rn_to"], header["rn_id"])
    sk = b64u_decode(load_vector("keys.json")["nodes"]["B"]["mlkem768x25519"]["private_jwk"]["d"])
    assert hpke_open_xwing_chacha(sealed, sk, info).decode("ascii") == vector["inner_jws"]
    with pytest.raises(InvalidTag):  # another seed is another key
        hpke_open_xwing_chacha(sealed, bytes(32), info)


def test_appendix_b_gives_the_hybrid_key_as_its_32_byte_seed() -> None:
    text = SPEC.read_text(encoding="utf-8").split("## Appendix B.", 1)[1]
    (row,) = [line for line in text.splitlines() if "| MLKEM768-X25519 |" in line]
    private = re.findall(r"`([A-Za-z0-9_-]+)`", row)[-1]
    assert len(b64u_decode(private)) == 32
    assert NODES["B"].hybrid.secret == bytes.fromhex(XWING["expansion"]["sk_hex"])


def test_a_hybrid_key_kept_in_the_older_expanded_form_is_the_same_key() -> None:
    """Older nodes stored the hybrid key expanded (96 bytes: the ML-KEM seed, then the
    X25519 scalar); loaded that way it is the key its 32-byte seed gives, and other lengths
    are refused."""
    seed = hashlib.shake_256(b"expanded form").digest(32)
    from_seed = DecryptionKey.mlkem768_x25519(seed)
    expanded = DecryptionKey.mlkem768_x25519_expanded(b"".join(xwing_expand(seed)))
    assert (expanded.crv, expanded.secret) == (from_seed.crv, b"".join(xwing_expand(seed)))
    assert expanded.public.jwk() == from_seed.public.jwk() and expanded.kid == from_seed.kid
    for size in (32, 95, 97):
        with pytest.raises(ValueError, match="96 bytes"):
            DecryptionKey.mlkem768_x25519_expanded(bytes(size))
