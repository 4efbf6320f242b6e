"""Every admin-API route of the node, gathered from the modules that define them. The
OpenAPI document is built from this list."""

from __future__ import annotations

from node.http import (
    connections_api,
    contacts_api,
    csv_api,
    deals_api,
    federation_api,
    notes_api,
    opportunities,
    referral_api,
    reporting,
    users_api,
    workflows_api,
)
from node.http.api import Route

ALL: list[Route] = [
    *federation_api.ROUTES,
    *connections_api.ROUTES,
    *users_api.ROUTES,
    *referral_api.ROUTES,
    *opportunities.ROUTES,
    *reporting.ROUTES,
    *workflows_api.ROUTES,
    *deals_api.ROUTES,
    *notes_api.ROUTES,
    *contacts_api.ROUTES,
    *csv_api.ROUTES,
]
