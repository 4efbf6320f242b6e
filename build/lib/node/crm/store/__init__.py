"""The CRM's tables (migration 10) and every SQL statement that reads or writes them.

Functions take the ``sqlite3.Connection`` they run on and return models, so callers
compose several of them inside one ``Database.write`` (or ``Database.run``) transaction.
Each function checks everything before its first write and raises :class:`CrmError`
(``not_found`` / ``invalid`` / ``conflict``) instead; a caller's transaction then rolls
back whatever earlier calls in it wrote. ``now`` is the caller's tz-aware datetime.

Callers import the package (``from node.crm import store as crm``) and call what it
re-exports below; each function lives in the module named for what it works on:

- ``users``: the users of the federation core's ``users`` table, read and created;
- ``workflows``: workflows and their ordered stages;
- ``contacts``: contacts;
- ``deals``: deals and the contacts on them, and moving a deal between stages;
- ``notes``: notes on deals and contacts;
- ``documents``: document metadata on deals;
- ``inbound_referrals``: placing and filing an inbound referral in one step;
- ``sql``: the small pieces those modules share (not re-exported).
"""

from __future__ import annotations

from node.crm.store.contacts import (
    contact_problems,
    contact_rows,
    create_contact,
    find_contacts_by_email,
    get_contact,
    insert_contact,
    list_contacts,
    update_contact,
)
from node.crm.store.deals import (
    attach_contact,
    create_deal,
    deal_problems,
    deal_rows,
    detach_contact,
    find_deal_by_referral,
    get_deal,
    insert_deal,
    list_deals,
    move_deal,
    update_deal,
)
from node.crm.store.documents import (
    add_document,
    get_document,
    list_documents,
)
from node.crm.store.inbound_referrals import (
    active_user_ids,
    file_referral,
    placement,
)
from node.crm.store.notes import (
    add_note,
    list_notes,
)
from node.crm.store.users import (
    create_user,
    find_user_by_email,
    get_user,
    list_users,
)
from node.crm.store.workflows import (
    add_stage,
    create_workflow,
    delete_stage,
    find_workflow_by_name,
    get_stage,
    get_workflow,
    list_workflows,
    rename_stage,
    reorder_stages,
    set_stage_outcome,
    update_workflow,
)

__all__ = [
    # contacts
    "contact_problems",
    "contact_rows",
    "create_contact",
    "find_contacts_by_email",
    "get_contact",
    "insert_contact",
    "list_contacts",
    "update_contact",
    # deals
    "attach_contact",
    "create_deal",
    "deal_problems",
    "deal_rows",
    "detach_contact",
    "find_deal_by_referral",
    "get_deal",
    "insert_deal",
    "list_deals",
    "move_deal",
    "update_deal",
    # documents
    "add_document",
    "get_document",
    "list_documents",
    # inbound_referrals
    "active_user_ids",
    "file_referral",
    "placement",
    # notes
    "add_note",
    "list_notes",
    # users
    "create_user",
    "find_user_by_email",
    "get_user",
    "list_users",
    # workflows
    "add_stage",
    "create_workflow",
    "delete_stage",
    "find_workflow_by_name",
    "get_stage",
    "get_workflow",
    "list_workflows",
    "rename_stage",
    "set_stage_outcome",
    "reorder_stages",
    "update_workflow",
]
