"""Schemathesis hooks for ``test_openapi_fuzz.py`` (loaded through SCHEMATHESIS_HOOKS).

``POST /api/v1/connections`` makes the node fetch the URL it is given. A fuzzer must not
point it at hosts other than this machine, so any URL the server would accept is
swapped for a loopback one that refuses connections at once. A string the server
refuses anyway (the point of a negative case) is left as it is.
"""

from __future__ import annotations

from typing import Any

import schemathesis

from node.base.inputs import text_problem

#: Nothing listens on port 9 (discard) here: the fetch fails at once.
NOWHERE = "http://127.0.0.1:9"


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.operation.path != "/api/v1/connections" or not isinstance(case.body, dict):
        return
    for key in ("url", "referral_url"):
        value = case.body.get(key)
        if isinstance(value, str) and len(value) <= 2000 and text_problem(value) is None:
            case.body[key] = NOWHERE
