"""Migration 40: indexes for a node of a million deals, contacts and referrals.

Every list is read in the order its rows were made (``created_at`` then id), a page at a
time: with an index in that order, filtered or not, a page costs what it holds, not the
size of the table (``bench/scale_data.py``). The deals' filters each get one (stage,
workflow, owner, folder), replacing the indexes on the filter alone. An export first
finds the custom fields in use (its header's columns) among the few rows that have any.
A contact's deals are found from its links alone (the index holds the deal's id). The delivery sweep
looks only at pending outbox items, by peer and by deadline: partial indexes hold just
those, so a node with a million delivered items sweeps as fast as an empty one, and the
items that are not delivered are found by state without reading the others (an outbox row
holds its envelope: reading a column after it means reading the envelope too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils


def up(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE INDEX contacts_created ON contacts(created_at, id);
        CREATE INDEX contacts_custom ON contacts(created_at, id) WHERE custom_fields != '{}';
        CREATE INDEX deals_created ON deals(created_at, id);
        CREATE INDEX deals_custom ON deals(created_at, id) WHERE custom_fields != '{}';
        DROP INDEX deals_board;
        CREATE INDEX deals_stage ON deals(stage_id, created_at, id);
        CREATE INDEX deals_workflow ON deals(workflow_id, created_at, id);
        DROP INDEX deals_owner;
        CREATE INDEX deals_owner ON deals(owner_user_id, created_at, id);
        DROP INDEX deals_folder;
        CREATE INDEX deals_folder ON deals(folder, created_at, id);
        DROP INDEX deal_contacts_contact;
        CREATE INDEX deal_contacts_contact ON deal_contacts(contact_id, deal_id);
        CREATE INDEX referrals_created ON referrals(created_at, local_id);
        CREATE INDEX referrals_side ON referrals(side, created_at, local_id);
        CREATE INDEX referrals_state ON referrals(side, state, created_at);
        CREATE INDEX outbox_pending ON outbox(peer_node_id, seq) WHERE state = 'pending';
        CREATE INDEX outbox_pending_deadline ON outbox(deadline_at) WHERE state = 'pending';
        CREATE INDEX outbox_state ON outbox(state, peer_node_id, attempts);
        """
    )
