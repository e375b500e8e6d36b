"""Relying parties (OAuth 2.0 clients): the registration rules
(:mod:`~idp.clients.metadata`), changes to registrations
(:mod:`~idp.clients.service`) and cached lookups (:mod:`~idp.clients.cache`)."""
