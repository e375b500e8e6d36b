"""Discovery and the JWKS answered before Flask
(idp.oidc.public_documents) are the answers the Flask views give: same
status, body and headers, for GET, HEAD and a conditional GET."""

from __future__ import annotations

import pytest
from werkzeug.test import EnvironBuilder

from idp.oidc.public_documents import DISCOVERY_PATHS, JWKS_PATH
from tests.helpers import wsgi_answer


@pytest.mark.parametrize("path", [*DISCOVERY_PATHS, JWKS_PATH])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_fast_answer_is_the_viewswsgi_answer(idp, path, method):
    app = idp.app
    fast = app.wsgi_app
    environ = EnvironBuilder(path=path, method=method, base_url=idp.url).get_environ()
    status, headers, body = wsgi_answer(fast, environ)
    assert status.startswith("200") and headers["access-control-allow-origin"] == "*"
    assert wsgi_answer(fast._downstream, environ) == (status, headers, body)
    if method == "GET":
        assert body and headers["content-length"] == str(len(body))
    conditional = EnvironBuilder(path=path, method=method, base_url=idp.url,
                                 headers={"If-None-Match": "W/" + headers["etag"]}
                                 ).get_environ()
    unchanged = wsgi_answer(fast, conditional)
    assert unchanged[0].startswith("304") and unchanged[2] == b""
    assert wsgi_answer(fast._downstream, conditional) == unchanged


def test_other_methods_and_paths_go_on_to_flask(idp):
    fast = idp.app.wsgi_app
    preflight = EnvironBuilder(path=JWKS_PATH, method="OPTIONS", base_url=idp.url,
                               headers={"Origin": "https://rp.example.test",
                                        "Access-Control-Request-Method": "GET"}).get_environ()
    status, headers, _ = wsgi_answer(fast, preflight)
    assert status.startswith("204") and headers["access-control-allow-methods"] == "GET"
    status, _, _ = wsgi_answer(fast, EnvironBuilder(path="/jwks.json/", base_url=idp.url)
                           .get_environ())
    assert status.startswith("404")
