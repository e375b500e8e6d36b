"""The CSP form-action source of a redirect URI's origin (idp.web.form_action_source)."""

from __future__ import annotations

import pytest

from idp.web import form_action_source


@pytest.mark.parametrize(("uri", "source"), [
    ("https://civil.example.gov.cn/callback?x=1", "https://civil.example.gov.cn"),
    ("https://Civil.Example.gov.cn:8443/cb", "https://civil.example.gov.cn:8443"),
    ("http://127.0.0.1:53123/cb", "http://127.0.0.1:53123"),
    # CSP host-sources cannot name an IPv6 literal: the scheme alone.
    ("http://[::1]:53123/cb", "http:"),
    # A native app's private-use scheme (RFC 8252 §7.1).
    ("com.example.app:/oauth2redirect", "com.example.app:"),
    # Nothing that could break out of the directive: user information is
    # not part of the origin, and a host that is not a DNS name is not named.
    ("https://a.example;script-src *@b.example/", "https://b.example"),
    ("https://a.example;%20script-src/", "https:"),
    ("javascript alert(1)", None),
    ("https://bad.example:99999/cb", None),
])
def test_form_action_source(uri, source):
    assert form_action_source(uri) == source
