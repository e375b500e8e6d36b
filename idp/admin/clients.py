"""What operators do to relying parties beyond their registration
(:mod:`idp.clients.service`): remove one with everything it was granted."""

from __future__ import annotations

from dataclasses import dataclass

from idp.authorizations.service import revoke_client_grants
from idp.clients.service import delete_client
from idp.runtime import Runtime


@dataclass(frozen=True)
class RemovedClient:
    """What removing a client ended.

    :ivar grants: live grants revoked (their refresh and access tokens stop).
    :ivar consents: consents deleted.
    """

    grants: int
    consents: int


def remove_client(rt: Runtime, client_id: str, operator: str) -> RemovedClient:
    """Delete a client's registration and end its grants and consents, in
    the caller's transaction (flushed; the caller commits). Once committed,
    no process accepts the client or its tokens at the next request.

    :param operator: who acts, for the audit trail.
    :raises idp.clients.metadata.ClientError: an unknown client.
    """
    delete_client(rt, client_id, actor=operator)
    return RemovedClient(*revoke_client_grants(rt, client_id, "client_deleted"))
