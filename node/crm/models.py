"""The CRM's models: what the store returns, and the input models the admin API parses.

These are internal models, not wire models. All are frozen; all forbid unknown fields, so
a misspelt API field is refused by name instead of being silently dropped. Text is
stripped of surrounding whitespace. The field types they are built from, with their
checks, are in ``node.crm.fields``; ``node.crm.parsing`` turns input into these models.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from node.base.inputs import NotNull, PlainText, replace_refused
from node.crm.fields import (
    Blank,
    ContactRole,
    Country,
    Currency,
    CustomFields,
    DealType,
    Email,
    FileName,
    Id,
    IsoDate,
    Labels,
    LongText,
    Money,
    Name,
    NodeId,
    NoteKind,
    Origin,
    Phone,
    Role,
    Sha256,
    ShortText,
    Timestamp,
)


class Model(BaseModel):
    # Built on first use (``defer_build``): an idle node holds none it has not needed.
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True, defer_build=True)


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


#: What reaching a stage means for the deal: nothing more than progress (None), or its
#: outcome, which a referred deal reports back to the referrer as final.
Outcome = Literal["won", "lost"]


class Stage(Model):
    id: str
    workflow_id: str
    name: str
    position: int
    outcome: Outcome | None = None


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
    #: Stage name -> the outcome it means, e.g. ``{"Settled": "won"}``; names must be
    #: among ``stage_names``.
    outcomes: dict[Name, Outcome] = Field(default_factory=dict, max_length=50)

    @model_validator(mode="after")
    def _outcomes_name_stages(self) -> WorkflowIn:
        folded = {n.casefold() for n in self.stage_names}
        for name in self.outcomes:
            if name.casefold() not in folded:
                raise ValueError(f"outcomes names {name!r}, which is not one of stage_names")
        return self


class WorkflowPatch(Model):
    """Only the fields given change."""

    name: Name | None = None
    owner_user_id: Id | None = None


class StageIn(Model):
    name: Name
    #: Where to insert (0 = first); None appends.
    position: Annotated[int, Field(ge=0, strict=True)] | None = None
    outcome: Outcome | None = None


# -- contacts --------------------------------------------------------------------------


class Address(Model):
    line1: Annotated[ShortText | None, Blank] = None
    line2: Annotated[ShortText | None, Blank] = None
    locality: Annotated[ShortText | None, Blank] = None
    region: Annotated[ShortText | None, Blank] = None
    postcode: Annotated[
        Annotated[str, StringConstraints(max_length=20), PlainText(max_length=20)] | None, Blank
    ] = None
    country: Annotated[Country | None, Blank] = None


class _ContactFields(Model):
    first_name: Annotated[Name | None, Blank] = None
    last_name: Annotated[Name | None, Blank] = None
    email: Annotated[Email | None, Blank] = None
    phone: Annotated[Phone | None, Blank] = None
    address: Address = Field(default_factory=Address)  # made when used: no model is built at import
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
    ``custom_fields`` are replaced as a whole (and cannot be null)."""

    first_name: Annotated[Name | None, Blank] = None
    last_name: Annotated[Name | None, Blank] = None
    email: Annotated[Email | None, Blank] = None
    phone: Annotated[Phone | None, Blank] = None
    address: Annotated[Address | None, NotNull()] = None
    date_of_birth: Annotated[IsoDate | None, Blank] = None
    custom_fields: Annotated[CustomFields | None, NotNull()] = None


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

    title: Annotated[Name | None, NotNull()] = None
    deal_type: Annotated[DealType | None, Blank] = None
    amount: Annotated[Money | None, Blank] = None
    currency: Annotated[Currency | None, Blank] = None
    owner_user_id: Annotated[Id | None, Blank] = None
    folder: Annotated[ShortText | None, NotNull()] = None
    source: Annotated[ShortText | None, NotNull()] = None
    summary: Annotated[LongText | None, NotNull()] = None
    labels: Annotated[Labels | None, NotNull()] = None
    custom_fields: Annotated[CustomFields | None, NotNull()] = None
    contacts: Annotated[DealContacts | None, NotNull()] = None


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


def note_text(text: str) -> str:
    """The body of a note the node writes itself, quoting what others wrote (a reason, a
    message, a peer's status report): quoting must never make the note invalid, so a
    character the text rule refuses shows as U+FFFD and a body past ``NOTE_MAX_CHARS`` is
    cut, ending with an ellipsis. What was quoted is kept whole where it came from."""
    text = replace_refused(text, multiline=True)
    return text if len(text) <= NOTE_MAX_CHARS else text[: NOTE_MAX_CHARS - 1] + "\u2026"


class NoteIn(Model):
    """A note on a deal, a contact, or a contact within a deal."""

    deal_id: Annotated[Id | None, Blank] = None
    contact_id: Annotated[Id | None, Blank] = Field(default=None, validate_default=True)
    body: Annotated[
        str,
        StringConstraints(min_length=1, max_length=NOTE_MAX_CHARS),
        PlainText(multiline=True, max_length=NOTE_MAX_CHARS),
    ]

    @field_validator("contact_id")
    @classmethod
    def _on_something(cls, value: str | None, info: ValidationInfo) -> str | None:
        # a deal_id that failed its own check is absent from info.data: one error is enough
        if value is None and "deal_id" in info.data and info.data["deal_id"] is None:
            raise ValueError("a note needs a deal_id or a contact_id")
        return value


class Document(Model):
    """A file kept with a deal: its metadata, and whether this node holds its bytes."""

    id: str
    deal_id: str
    name: str
    label: str
    size_bytes: int
    sha256: str
    created_at: str
    #: The file's checked type, when this node holds its bytes (uploaded in the console).
    content_type: str | None = None
    #: This node holds the bytes (``<data_dir>/documents/<sha256>``); else metadata only.
    stored: bool = False


class DocumentIn(Model):
    deal_id: Id
    name: FileName
    #: e.g. "Credit guide", "Privacy disclosure".
    label: ShortText = ""
    size_bytes: Annotated[int, Field(ge=0, strict=True)]
    sha256: Sha256
