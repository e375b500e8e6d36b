"""OpenID Provider metadata (OpenID Connect Discovery 1.0 §3, RFC 8414)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from idp.clients.metadata import AUTH_METHODS, GRANT_TYPES, SCOPES
from idp.config import SIGNING_ALGS
from idp.oidc.claims import SUPPORTED_CLAIMS
from idp.oidc.identity import CLAIMS_IN_VERIFIED_CLAIMS, DOCUMENT_TYPES, EVIDENCE_TYPES


def provider_metadata(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The discovery document for the provider configured by ``settings``."""
    issuer = settings["issuer"]
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks.json",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        "end_session_endpoint": f"{issuer}/logout",
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": list(GRANT_TYPES),
        "subject_types_supported": ["public", "pairwise"],
        "acr_values_supported": list(settings["assurance"]["acr_values"]),
        "id_token_signing_alg_values_supported": list(SIGNING_ALGS),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        # RFC 8414 §2: required wherever private_key_jwt is listed.
        "revocation_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGS),
        "introspection_endpoint_auth_methods_supported": [
            m for m in AUTH_METHODS if m != "none"
        ],
        "introspection_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGS),
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": list(SUPPORTED_CLAIMS),
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "ui_locales_supported": ["en", "zh-CN"],
        "claim_types_supported": ["normal"],
        "authorization_response_iss_parameter_supported": True,
        "verified_claims_supported": True,
        "trust_frameworks_supported": [settings["assurance"]["trust_framework"]],
        "evidence_supported": list(EVIDENCE_TYPES),
        "documents_supported": list(DOCUMENT_TYPES),
        "claims_in_verified_claims_supported": list(CLAIMS_IN_VERIFIED_CLAIMS),
        # OpenID Connect Back-Channel Logout 1.0 §2.1, Front-Channel Logout 1.0 §3.
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": True,
        "frontchannel_logout_session_supported": True,
    }


def serialise(metadata: dict[str, Any]) -> tuple[bytes, str]:
    """Pre-serialise a document once: returns ``(body, etag)``."""
    body = json.dumps(metadata, separators=(",", ":")).encode()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
