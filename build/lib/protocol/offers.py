"""Rules a referral offer must keep beyond its schema: never more than the referrer chose
to share, and only clients who consented. Senders build offers that keep them; receivers
check them and refuse an offer that does not (``field_not_allowed``, ``consent_required``).
"""

from __future__ import annotations

from protocol.errors import RemoteProtocolError
from protocol.messages import ReferralOffer
from protocol.wire import ErrorCode

#: Every field a referral may carry, by the name used in ``shared_fields``. Nothing else
#: travels: documents, custom fields, labels, history notes and broker-tool data never do.
SHAREABLE_FIELDS: tuple[str, ...] = (
    "deal.title",
    "deal.deal_type",
    "deal.amount",  # with deal.currency
    "deal.summary",
    "owner",
    "contacts.first_name",
    "contacts.last_name",
    "contacts.email",
    "contacts.phone",
    "contacts.address",
    "contacts.date_of_birth",
)
#: Always present: a referral needs a title to be filed.
REQUIRED_FIELDS: tuple[str, ...] = ("deal.title",)

_CONTACT_FIELDS = ("first_name", "last_name", "email", "phone", "address", "date_of_birth")


def present_fields(offer: ReferralOffer) -> set[str]:
    """The shareable fields that ``offer`` actually carries."""
    present = {"deal.title"}
    if offer.deal.deal_type is not None:
        present.add("deal.deal_type")
    if offer.deal.amount is not None or offer.deal.currency is not None:
        present.add("deal.amount")
    if offer.deal.summary is not None:
        present.add("deal.summary")
    if offer.owner is not None:
        present.add("owner")
    for contact in offer.contacts:
        for name in _CONTACT_FIELDS:
            if getattr(contact, name) is not None:
                present.add(f"contacts.{name}")
    return present


def check_offer(offer: ReferralOffer) -> None:
    """Raise unless every field present was shared and every client consented."""
    unknown = sorted(set(offer.shared_fields) - set(SHAREABLE_FIELDS))
    if unknown:
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"unknown shared_fields: {', '.join(unknown)}")
    extra = sorted(present_fields(offer) - set(offer.shared_fields) - set(REQUIRED_FIELDS))
    if extra:
        raise RemoteProtocolError(
            ErrorCode.FIELD_NOT_ALLOWED, f"the offer carries fields it does not list as shared: {', '.join(extra)}"
        )
    without = [c.ref for c in offer.contacts if c.ref not in offer.consent.contact_refs]
    if without:
        raise RemoteProtocolError(
            ErrorCode.CONSENT_REQUIRED, f"no recorded consent for contacts {', '.join(without)}"
        )
