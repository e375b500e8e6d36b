"""The token flows of the authorization server, one module per grant type
(RFC 6749 §4.1, §4.4, §6), as Authlib grant subclasses registered by
:class:`idp.oidc.server.AuthorizationServer`.
"""
