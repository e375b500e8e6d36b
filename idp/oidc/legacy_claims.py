"""The ``legacy_ids`` claim: a department's own client learns which of its
old user ids the account holds, so it can map its old records (issue 10,
docs/migration.md, "Legacy links")."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import scope_to_list

from idp.accounts.links import links_of
from idp.runtime import Runtime


def legacy_claims(rt: Runtime, client: Any, account: Any, scope: str) -> dict[str, Any]:
    """``{"legacy_ids": [...]}`` for a client registered with a department
    (``idp clients create --department CODE``) whose token has the scope
    ``legacy``: that department's legacy ids linked to the account, oldest
    first, tombstones included (an empty list when it holds none); else
    ``{}``. Another department's ids are never released.

    :param client: the registered client (``department`` attribute).
    :param account: the account or its snapshot (``id`` attribute).
    """
    department = getattr(client, "department", None)
    if department is None or "legacy" not in scope_to_list(scope):
        return {}
    return {"legacy_ids": [item.value for item in links_of(rt, account, "legacy", department)]}
