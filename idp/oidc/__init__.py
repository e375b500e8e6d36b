"""The OpenID Connect / OAuth 2.0 protocol: server glue, grants, endpoints, claims, keys."""
