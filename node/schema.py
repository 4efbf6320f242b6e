"""Imports every module that registers migrations, so that ``node.db.migrate`` sees them.

Versions: 1-9 federation core (node.store, node.landing, node.referring), 10-19 the CRM
(node.crm), 20-29 opportunities.
"""

from __future__ import annotations

import node.crm.store  # noqa: F401
import node.landing  # noqa: F401
import node.opportunities  # noqa: F401
import node.referring  # noqa: F401
import node.store  # noqa: F401
