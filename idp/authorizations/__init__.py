"""Authorizations an account gave clients: grants with their refresh-token
families, and remembered consents.

Below both the protocol (:mod:`idp.oidc`, which issues them) and the SSO
sessions (:mod:`idp.sessions`, which revoke them when a session ends), so
neither imports the other for them. Named so that it does not shadow
Authlib's ``grants`` (the flow classes in :mod:`idp.oidc.flows`).
"""
