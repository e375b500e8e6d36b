"""When ``idp serve``'s worker holds a request as whole (idp.cli.serve)."""

from __future__ import annotations

import pytest

from idp.cli.serve import MAX_BUFFERED_BYTES, request_buffered

HEAD = b"POST /token HTTP/1.1\r\nHost: id.example.test\r\n"


@pytest.mark.parametrize("data,whole", [
    (b"", False),
    (b"GET / HTTP/1.1\r\nHost: x\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
    (HEAD + b"Content-Length: 10\r\n\r\n12345", False),
    (HEAD + b"Content-Length: 10\r\n\r\n1234567890", True),
    (HEAD + b"content-length:10 \r\n\r\n1234567890", True),
    (HEAD + b"Content-Length: 10\r\nExpect: 100-continue\r\n\r\n", True),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", False),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", True),
    (HEAD + b"Content-Length: 999999999\r\n\r\n" + b"x" * MAX_BUFFERED_BYTES, True),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_BUFFERED_BYTES, True),
])
def test_request_buffered(data, whole):
    assert request_buffered(data) is whole
