"""CAS 3.0 for the department portals that speak CAS (Apereo CAS clients
in Java, PHP and .NET), under ``/cas``, sharing the SSO session with
OpenID Connect: a login at a CAS portal opens the OpenID Connect portals
without a password, and the other way round.

- :mod:`idp.cas.services`: which registered CAS service a service URL is.
- :mod:`idp.cas.tickets`: service, proxy and proxy-granting tickets, kept
  in the store only as keyed hashes.
- :mod:`idp.cas.release`: the ``user`` and attributes a service receives,
  by the same rules as an OpenID Connect client's ``sub`` and claims.
- :mod:`idp.cas.responses`: the XML and JSON answers of CAS 3.0 Appendix A.
- :mod:`idp.cas.blueprint`: the endpoints.
"""
