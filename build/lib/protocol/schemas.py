"""JSON Schemas (draft 2020-12) of everything on the wire, generated from the models.

The schemas in ``schemas/`` are written by ``python -m node.codegen`` from
:func:`json_schemas`; a test checks that the committed files equal a fresh generation,
so a schema is never edited by hand and never drifts from the code that validates.

A schema describes the current minor version. A receiver accepts members it does not
know only when the object says it is a newer minor (see :mod:`protocol.versions`).
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from protocol.envelope import EnvelopeHeader, InnerHeader
from protocol.jws import FlattenedJws
from protocol.messages import DOCUMENT_MODELS, MESSAGE_MODELS
from protocol.models import WireModel
from protocol.wire import MAJOR, versioned

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = f"https://refnode.example/schemas/v{MAJOR}/"


class _NoNull(GenerateJsonSchema):
    """No ``null`` on the wire: an optional member is omitted, never null (spec 3.2). So an
    optional field's schema is its type alone, and the member is simply not required."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        if schema.get("default", ...) is None:
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)


def _schema(model: type[WireModel], file_name: str, title: str) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_NoNull)
    return {"$schema": DIALECT, "$id": ID_BASE + file_name, **schema, "title": title}


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, for every message, document and JWS header."""
    out: dict[str, dict[str, Any]] = {}

    def add(name: str, model: type[WireModel], title: str) -> None:
        out[f"{name}.schema.json"] = _schema(model, f"{name}.schema.json", title)

    add(
        "envelope",
        FlattenedJws,
        "refnode envelope: a JWS in the flattened JSON serialization "
        "(receipts and discovery documents use the same form)",
    )
    add("envelope-header", EnvelopeHeader, "refnode envelope: outer JWS protected header")
    add("inner-header", InnerHeader, "refnode envelope: inner (compact) JWS protected header")
    for doc_type, model in DOCUMENT_MODELS.items():
        add(doc_type.value, model, f"refnode {versioned(doc_type)} document")
    for message_type, model in MESSAGE_MODELS.items():
        add(message_type.value, model, f"refnode {versioned(message_type)} message")
    return out
