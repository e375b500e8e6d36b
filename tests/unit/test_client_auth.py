"""HTTP Basic client credentials are read by their grammar (RFC 7617 §2,
RFC 6749 §2.3.1), never by a split on whitespace (idp.oidc.client_auth)."""

from __future__ import annotations

import base64

import pytest

from idp.oidc.client_auth import basic_credentials


def _basic(value: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(value).decode()}


@pytest.mark.parametrize("headers,credentials", [
    (_basic(b"app:s3cret"), ("app", "s3cret")),
    (_basic(b"app:"), ("app", "")),
    (_basic(b"app:a:b"), ("app", "a:b")),
    (_basic(b"my%20app:p%3Aq"), ("my app", "p:q")),
    ({"Authorization": "basic  " + base64.b64encode(b"app:x").decode() + " "},
     ("app", "x")),
])
def test_credentials(headers, credentials):
    assert basic_credentials(headers) == credentials


@pytest.mark.parametrize("authorization", [
    None, "", "Basic", "Basic ", "Basic   ", "Basic \xa0", "basic \x85", "Basic\tYXBwOng=",
    "Bearer YXBwOng=", "Basic YXBwOng", "Basic YXB wOng=", "Basic //46/w==",
    "Basic " + base64.b64encode(b"no-colon").decode(),
    "Basic " + base64.b64encode(b":secret").decode(),
])
def test_anything_else_is_no_credentials(authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    assert basic_credentials(headers) is None
