"""The CRM's models: what the store returns, and the input models the admin API parses.

These are internal models, not wire models. All are frozen; all forbid unknown fields, so
a misspelt API field is refused by name instead of being silently dropped. Text is
stripped of surrounding whitespace. Money is a decimal string, never a float. Times are
RFC 3339 UTC text (``2026-11-23T11:30:00Z``), set by the store from the caller's ``now``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from node.crm.errors import CrmError


def _matching(pattern: str, message: str) -> AfterValidator:
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


#: An optional text field: a blank string means "none".
Blank = BeforeValidator(_blank_to_none)

Id = Annotated[
    str, _matching(r"[A-Za-z0-9_-]{1,64}", "must be an id: 1 to 64 letters, digits, '_' or '-'")
]
#: Money: a non-negative decimal string, up to 15 integer and 4 fraction digits.
Money = Annotated[
    str,
    _matching(
        r"(0|[1-9][0-9]{0,14})(\.[0-9]{1,4})?",
        "must be a decimal string such as '250000.00' (no sign, separators or exponent; "
        "at most 4 decimals)",
    ),
]
Currency = Annotated[str, _matching(r"[A-Z]{3}", "must be an ISO 4217 code such as 'AUD'")]
Email = Annotated[
    str,
    StringConstraints(max_length=254),
    _matching(r"[^@\s]{1,64}@[^@\s]{1,253}", "must be an email address"),
]
Phone = Annotated[
    str,
    _matching(
        r"\+?[0-9 ()-]{3,32}", "must be a phone number: digits, spaces, ( ) - and a leading +"
    ),
]
Country = Annotated[str, _matching(r"[A-Z]{2}", "must be an ISO 3166 alpha-2 code such as 'AU'")]
#: A lowercase token, as on the wire: ``home-loan``, ``asset-finance``.
DealType = Annotated[
    str,
    _matching(r"[a-z0-9][a-z0-9_-]{0,63}", "must be a lowercase token such as 'home-loan'"),
]
Sha256 = Annotated[str, _matching(r"[0-9a-f]{64}", "must be a SHA-256 digest in lowercase hex")]
NodeId = Annotated[str, _matching(r"[A-Za-z0-9_-]{43}", "must be a node id (43 characters)")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ShortText = Annotated[str, StringConstraints(max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=8000)]
Role = Literal["admin", "broker"]
ContactRole = Literal["primary", "co-applicant", "other"]
NoteKind = Literal["user", "system", "referral"]
Origin = Literal["local", "referral"]


def _iso_date(value: str) -> str:
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise ValueError
        date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a date written YYYY-MM-DD") from None
    return value


_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def _timestamp(value: str) -> str:
    try:
        if not _TIMESTAMP.fullmatch(value):
            raise ValueError
        datetime.fromisoformat(value[:-1])  # a real date and time (strptime is 10x slower)
    except ValueError:
        raise ValueError("must be a UTC time written YYYY-MM-DDTHH:MM:SSZ") from None
    return value


IsoDate = Annotated[str, AfterValidator(_iso_date)]
Timestamp = Annotated[str, AfterValidator(_timestamp)]

_LABEL = re.compile(r"[^;\x00-\x1f]{1,64}")
CUSTOM_FIELD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_ .-]{0,63}")


def _labels(value: list[str]) -> list[str]:
    seen: list[str] = []
    for label in value:
        if not _LABEL.fullmatch(label):
            raise ValueError(f"label {label!r} must be 1 to 64 characters without ';'")
        if label not in seen:
            seen.append(label)
    if len(seen) > 50:
        raise ValueError("at most 50 labels")
    return seen


def _custom_fields(value: dict[str, str]) -> dict[str, str]:
    """Names are checked; values are stripped and blank ones dropped (blank = not set)."""
    out: dict[str, str] = {}
    for name, text in value.items():
        if not CUSTOM_FIELD_NAME.fullmatch(name):
            raise ValueError(
                f"custom field name {name!r} must be 1 to 64 letters, digits, spaces, '_', '.' "
                "or '-', starting with a letter or digit"
            )
        if len(text) > 2000:
            raise ValueError(f"custom field {name!r} must be at most 2000 characters")
        if text.strip():
            out[name] = text.strip()
    if len(out) > 100:
        raise ValueError("at most 100 custom fields")
    return out


Labels = Annotated[
    list[Annotated[str, StringConstraints(strip_whitespace=True)]], AfterValidator(_labels)
]
CustomFields = Annotated[dict[str, str], AfterValidator(_custom_fields)]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


# -- users (the core ``users`` table) ---------------------------------------------------


class User(Model):
    id: str
    email: str
    name: str
    role: Role
    active: bool
    created_at: str


class UserIn(Model):
    email: Email
    name: Name
    role: Role


# -- workflows -------------------------------------------------------------------------


class Stage(Model):
    id: str
    workflow_id: str
    name: str
    position: int


class Workflow(Model):
    id: str
    name: str
    owner_user_id: str
    stages: list[Stage]
    created_at: str

    def stage_named(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name.casefold() == name.casefold()), None)


def _unique_names(names: list[str]) -> list[str]:
    folded = [n.casefold() for n in names]
    for name in names:
        if folded.count(name.casefold()) > 1:
            raise ValueError(f"stage name {name!r} appears twice")
    return names


class WorkflowIn(Model):
    name: Name
    owner_user_id: Id
    stage_names: Annotated[
        list[Name], Field(min_length=1, max_length=50), AfterValidator(_unique_names)
    ]


class WorkflowPatch(Model):
    """Only the fields given change."""

    name: Name | None = None
    owner_user_id: Id | None = None


class StageIn(Model):
    name: Name
    #: Where to insert (0 = first); None appends.
    position: Annotated[int, Field(ge=0, strict=True)] | None = None


# -- contacts --------------------------------------------------------------------------


class Address(Model):
    line1: Annotated[ShortText | None, Blank] = None
    line2: Annotated[ShortText | None, Blank] = None
    locality: Annotated[ShortText | None, Blank] = None
    region: Annotated[ShortText | None, Blank] = None
    postcode: Annotated[Annotated[str, StringConstraints(max_length=20)] | None, Blank] = None
    country: Annotated[Country | None, Blank] = None


class _ContactFields(Model):
    first_name: Annotated[Name | None, Blank] = None
    last_name: Annotated[Name | None, Blank] = None
    email: Annotated[Email | None, Blank] = None
    phone: Annotated[Phone | None, Blank] = None
    address: Address = Address()
    date_of_birth: Annotated[IsoDate | None, Blank] = None
    custom_fields: CustomFields = {}


class ContactIn(_ContactFields):
    pass


class Contact(_ContactFields):
    id: Id
    created_at: Timestamp
    updated_at: Timestamp

    @property
    def display_name(self) -> str:
        name = " ".join(p for p in (self.first_name, self.last_name) if p)
        return name or self.email or self.id


class ContactPatch(Model):
    """Only the fields given change; ``null`` clears an optional field. ``address`` and
    ``custom_fields`` are replaced as a whole."""

    first_name: Annotated[Name | None, Blank] = None
    last_name: Annotated[Name | None, Blank] = None
    email: Annotated[Email | None, Blank] = None
    phone: Annotated[Phone | None, Blank] = None
    address: Address | None = None
    date_of_birth: Annotated[IsoDate | None, Blank] = None
    custom_fields: CustomFields | None = None


# -- deals -----------------------------------------------------------------------------


class DealContact(Model):
    contact_id: Id
    role: ContactRole = "primary"


class DealReferral(Model):
    """The inbound referral a deal was created from."""

    peer_node_id: NodeId
    referral_id: Id


def _distinct_contacts(value: list[DealContact]) -> list[DealContact]:
    ids = [c.contact_id for c in value]
    for contact_id in ids:
        if ids.count(contact_id) > 1:
            raise ValueError(f"contact {contact_id!r} is listed twice")
    return value


DealContacts = Annotated[
    list[DealContact], Field(max_length=20), AfterValidator(_distinct_contacts)
]


class _DealFields(Model):
    title: Name
    deal_type: Annotated[DealType | None, Blank] = None
    amount: Annotated[Money | None, Blank] = None
    currency: Annotated[Currency | None, Blank] = Field(default=None, validate_default=True)
    workflow_id: Id
    stage_id: Id
    owner_user_id: Annotated[Id | None, Blank] = None
    folder: ShortText = ""
    source: ShortText = ""
    summary: LongText = ""
    labels: Labels = []
    custom_fields: CustomFields = {}
    contacts: DealContacts = []

    @field_validator("currency")
    @classmethod
    def _currency_with_amount(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("amount") is not None:
            raise ValueError("is required when amount is set")
        return value


class DealIn(_DealFields):
    pass


class Deal(_DealFields):
    id: Id
    origin: Origin = "local"
    referral: DealReferral | None = None
    created_at: Timestamp
    updated_at: Timestamp

    @model_validator(mode="after")
    def _referral_iff_origin(self) -> Deal:
        if (self.origin == "referral") != (self.referral is not None):
            raise ValueError("a deal has a referral exactly when its origin is 'referral'")
        return self


class DealPatch(Model):
    """Only the fields given change; ``null`` clears an optional field. ``labels``,
    ``custom_fields`` and ``contacts`` are replaced as a whole. The stage changes with
    ``move_deal``, not here."""

    title: Name | None = None
    deal_type: Annotated[DealType | None, Blank] = None
    amount: Annotated[Money | None, Blank] = None
    currency: Annotated[Currency | None, Blank] = None
    owner_user_id: Annotated[Id | None, Blank] = None
    folder: ShortText | None = None
    source: ShortText | None = None
    summary: LongText | None = None
    labels: Labels | None = None
    custom_fields: CustomFields | None = None
    contacts: DealContacts | None = None


# -- notes and documents ---------------------------------------------------------------


class Note(Model):
    id: str
    deal_id: str | None
    contact_id: str | None
    author_user_id: str | None
    kind: NoteKind
    body: str
    created_at: str


#: The longest note body.
NOTE_MAX_CHARS = 8000


class NoteIn(Model):
    """A note on a deal, a contact, or a contact within a deal."""

    deal_id: Annotated[Id | None, Blank] = None
    contact_id: Annotated[Id | None, Blank] = Field(default=None, validate_default=True)
    body: Annotated[str, StringConstraints(min_length=1, max_length=NOTE_MAX_CHARS)]

    @field_validator("contact_id")
    @classmethod
    def _on_something(cls, value: str | None, info: ValidationInfo) -> str | None:
        # a deal_id that failed its own check is absent from info.data: one error is enough
        if value is None and "deal_id" in info.data and info.data["deal_id"] is None:
            raise ValueError("a note needs a deal_id or a contact_id")
        return value


class Document(Model):
    """Metadata of a file kept with a deal; the bytes live elsewhere."""

    id: str
    deal_id: str
    name: str
    label: str
    size_bytes: int
    sha256: str
    created_at: str


class DocumentIn(Model):
    deal_id: Id
    name: Annotated[Name, _matching(r"[^/\\\x00-\x1f]+", "must be a file name without '/' or '\\'")]
    #: e.g. "Credit guide", "Privacy disclosure".
    label: ShortText = ""
    size_bytes: Annotated[int, Field(ge=0, strict=True)]
    sha256: Sha256


# -- parsing input ---------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def field_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """Every problem as ``(field, message)``; the field is a dotted path."""
    out: list[tuple[str, str]] = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(input)"
        out.append((field, _message(err["type"], err["msg"])))
    return out


_MESSAGES: dict[str, Callable[[str], str]] = {
    "missing": lambda _: "is required",
    "extra_forbidden": lambda _: "is not a known field",
    "value_error": lambda msg: msg.removeprefix("Value error, "),
    "string_type": lambda _: "must be a string",
}


def _message(kind: str, msg: str) -> str:
    fix = _MESSAGES.get(kind)
    if fix is not None:
        return fix(msg)
    return msg.replace("Input should be", "must be").replace("String should", "must")


def parse(model: type[M], data: Any) -> M:
    """Validate ``data`` as ``model``, or raise ``CrmError("invalid")`` naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = field_errors(exc)
        field, message = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CrmError("invalid", f"{field}: {message}{more}", field) from None
