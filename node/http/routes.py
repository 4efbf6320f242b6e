"""Every admin-API route of the node, gathered from the modules that define them. The
OpenAPI document is built from this list."""

from __future__ import annotations

from node.http import admin_api, crm_api, opportunities, referral_api, reporting

ALL: list[admin_api.Route] = [
    *admin_api.ROUTES,
    *referral_api.ROUTES,
    *opportunities.ROUTES,
    *reporting.ROUTES,
    *crm_api.ROUTES,
]
