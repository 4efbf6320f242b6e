"""How the admin API's handlers turn models into the JSON they answer with: CRM models
whole, and the federation core's stored records without the raw bytes (discovery
documents, envelope bodies, receipts) that only the node reads."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def model_json(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def models_json(models: list[Any]) -> list[dict[str, Any]]:
    return [model_json(m) for m in models]


def record_json(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude={"discovery", "body", "receipt"})
