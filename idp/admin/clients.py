"""What operators do to relying parties beyond their registration
(:mod:`idp.clients.service`): change one, or remove one, with what it was
granted."""

from __future__ import annotations

from dataclasses import dataclass

from idp.authorizations.service import revoke_client_grants
from idp.clients.metadata import ClientMetadata
from idp.clients.models import Client
from idp.clients.service import Fetch, delete_client, find_client, update_client
from idp.runtime import Runtime


@dataclass(frozen=True)
class ChangedClient:
    """What changing a client did.

    :ivar client: the changed registration.
    :ivar secret: a new clear secret, shown once, or None.
    :ivar made_public: a confidential client became public.
    :ivar grants: live grants revoked because it did.
    """

    client: Client
    secret: str | None
    made_public: bool
    grants: int


@dataclass(frozen=True)
class RemovedClient:
    """What removing a client ended.

    :ivar grants: live grants revoked (their refresh and access tokens stop).
    :ivar consents: consents deleted.
    """

    grants: int
    consents: int


def change_client(rt: Runtime, client_id: str, metadata: ClientMetadata, operator: str, *,
                  fetch: Fetch | None = None) -> ChangedClient:
    """Change a client's registration (:func:`update_client`) in the
    caller's transaction (flushed; the caller commits).

    A confidential client made public (``token_endpoint_auth_method``
    ``none``) loses its live grants, refresh tokens and the access tokens
    naming them: refresh tokens issued to a confidential client are bound
    to its authentication (RFC 9700 §4.14.2), and a public client would use
    them with its ``client_id`` alone. Its consents stay; audited
    (``client.grants_revoked``, reason ``client_made_public``).

    :param metadata: the whole new registration.
    :param operator: who acts, for the audit trail.
    :raises idp.clients.metadata.ClientError: as :func:`update_client`.
    """
    row = find_client(client_id)
    was_confidential = row is not None and not row.is_public
    client, secret = update_client(rt, client_id, metadata, actor=operator, fetch=fetch)
    made_public = was_confidential and client.is_public
    grants = 0
    if made_public:
        grants, _ = revoke_client_grants(rt, client_id, "client_made_public",
                                         keep_consents=True)
    return ChangedClient(client, secret, made_public, grants)


def remove_client(rt: Runtime, client_id: str, operator: str) -> RemovedClient:
    """Delete a client's registration and end its grants and consents, in
    the caller's transaction (flushed; the caller commits). Once committed,
    no process accepts the client or its tokens at the next request.

    :param operator: who acts, for the audit trail.
    :raises idp.clients.metadata.ClientError: an unknown client.
    """
    delete_client(rt, client_id, actor=operator)
    return RemovedClient(*revoke_client_grants(rt, client_id, "client_deleted"))
