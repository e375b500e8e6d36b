"""Client persistence."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.extensions import db
from idp.timeutil import utcnow


class Client(db.Model):
    """A registered relying party (RFC 6749 §2, OpenID Connect Dynamic Registration §2 metadata)."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Public client identifier (RFC 6749 §2.2).
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    #: Human-readable name shown on consent and login pages.
    name: Mapped[str] = mapped_column(String(128))
    #: HMAC-SHA256 of the client secret; null for public and private_key_jwt clients.
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    #: HMAC-SHA256 of the secret before the last rotation, accepted until
    #: ``previous_secret_expires_at``; null when there is none.
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64))
    previous_secret_expires_at: Mapped[datetime | None]
    #: Registered redirect URIs, matched exactly (RFC 9700 §2.1).
    redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    #: Registered post-logout redirect URIs (OpenID RP-Initiated Logout §3).
    post_logout_redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    #: Grant types the client may use.
    grant_types: Mapped[list] = mapped_column(JSON, default=list)
    #: Scopes the client may request, space separated.
    scope: Mapped[str] = mapped_column(String(512))
    #: client_secret_basic, client_secret_post, private_key_jwt or none.
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    #: Trusted (first-party) clients skip the consent screen.
    trusted: Mapped[bool] = mapped_column(default=False)
    #: Algorithm of the ID tokens issued to this client (OIDC Dynamic
    #: Registration §2; access tokens use the provider-wide algorithm).
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(16), default="RS256")
    #: Public keys for private_key_jwt (RFC 7523), a JWK Set.
    jwks: Mapped[dict | None] = mapped_column(JSON)
    #: ``public`` or ``pairwise`` (OIDC Core §8): what ``sub`` the client sees.
    subject_type: Mapped[str] = mapped_column(String(16), default="pairwise")
    #: Host that pairwise subjects are computed for (OIDC Core §8.1): the
    #: host of the sector_identifier_uri, or of the redirect URIs.
    sector_identifier: Mapped[str | None] = mapped_column(String(255))
    #: The registered sector_identifier_uri, if any (OIDC Dynamic Registration §2).
    sector_identifier_uri: Mapped[str | None] = mapped_column(String(512))
    #: Lowest ``acr`` the client accepts; logins below it are stepped up.
    min_acr: Mapped[str | None] = mapped_column(String(64))
    #: A self-service kiosk that may log people in by the cards it reads.
    kiosk: Mapped[bool] = mapped_column(default=False)
    #: Accept only ``token_endpoint_auth_method`` itself; otherwise a client
    #: registered with a secret may send it by either ``client_secret_basic``
    #: or ``client_secret_post`` (one per request).
    strict_auth_method: Mapped[bool] = mapped_column(default=False)
    #: Origins (``scheme://host[:port]``) of browser apps allowed to call the
    #: token, userinfo, revocation and introspection endpoints (CORS).
    allowed_origins: Mapped[list] = mapped_column(JSON, default=list)
    #: A resource server: may introspect access tokens issued to other clients
    #: (RFC 7662 §4); other clients learn only about their own tokens.
    resource_server: Mapped[bool] = mapped_column(default=False)
    #: The department whose legacy users the client serves
    #: (idp.clients.metadata.ClientMetadata.department), or null.
    department: Mapped[str | None] = mapped_column(String(32))
    #: OpenID Connect Back-Channel and Front-Channel Logout 1.0
    #: (idp.clients.metadata.ClientMetadata).
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(2000))
    backchannel_logout_session_required: Mapped[bool] = mapped_column(default=False)
    frontchannel_logout_uri: Mapped[str | None] = mapped_column(String(2000))
    frontchannel_logout_session_required: Mapped[bool] = mapped_column(default=False)
    #: A CAS service's service URLs and proxy callbacks (null for an
    #: OpenID Connect client, so the CAS services are found by an index).
    cas_services: Mapped[list | None] = mapped_column(JSON(none_as_null=True))
    cas_proxy_callbacks: Mapped[list | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def is_public(self) -> bool:
        """Public clients (RFC 6749 §2.1) cannot keep a secret and must use PKCE."""
        return self.token_endpoint_auth_method == "none"
