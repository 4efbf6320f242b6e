"""The enterprise-partner message (docs/protocol.md, Appendix D) against its published
vectors: what must be accepted is, and what must be refused is, with its code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocol.errors import RemoteProtocolError
from protocol.messages import MESSAGE_MODELS, EnterprisePartner
from protocol.models import validate
from protocol.wire import MessageType

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "docs" / "vectors" / "enterprise-partner.json")
                     .read_text(encoding="utf-8"))


def test_the_message_is_registered() -> None:
    assert MESSAGE_MODELS[MessageType.ENTERPRISE_PARTNER] is EnterprisePartner


@pytest.mark.parametrize("case", VECTORS["accept"], ids=lambda c: c["why"])
def test_accepted(case: dict) -> None:
    message = validate(EnterprisePartner, case["payload"])
    assert message.wire() == case["payload"]


@pytest.mark.parametrize("case", VECTORS["reject"], ids=lambda c: c["why"])
def test_refused(case: dict) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        validate(EnterprisePartner, case["payload"])
    assert caught.value.code.value == case["error"]


def test_no_member_can_carry_a_secret() -> None:
    assert not {"password", "password_hash", "token", "secret"} & set(EnterprisePartner.model_fields)
