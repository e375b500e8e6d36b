"""Where ``idp serve``'s event loop finds the end of a request, so that it
hands a thread only whole requests (idp.cli.serve.RequestReader).

Issue 7's adversarial review: the first version held a request "whole" at
its head when it asked ``Expect: 100-continue``, took the first ``0 CRLF
CRLF`` after the head for the last chunk, read no body for a
``Content-Length`` of more than 18 digits, and handed over anything of 96
KiB as if whole; each let a slow client take a thread. Those cases now wait
for the body, or are refused by the loop itself."""

from __future__ import annotations

import pytest

from idp.cli.serve import MAX_BODY_BYTES, MAX_HEAD_BYTES, RequestReader, RequestRefusedError

HEAD = b"POST /token HTTP/1.1\r\nHost: id.example.test\r\n"
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
#: The request is all of the data.
WHOLE = -1


@pytest.mark.parametrize("data,end", [
    (b"", None),
    (b"GET / HTTP/1.1\r\nHost: x\r\n", None),
    (GET, WHOLE),
    (GET + GET[:10], len(GET)),  # a pipelined request behind it stays buffered
    (b"\r\n" + GET, WHOLE),  # one empty line before the request line is ignored
    (HEAD + b"Content-Length: 10\r\n\r\n12345", None),
    (HEAD + b"Content-Length: 10\r\n\r\n1234567890", WHOLE),
    (HEAD + b"content-length:10 \r\n\r\n1234567890", WHOLE),
    (HEAD + b"Content-Length: 10\r\n\r\na\nb\nc\nd\ne\n", WHOLE),  # LF in a body is data
    (HEAD + b"Content-Length: 0000000000000000001000\r\n\r\n" + b"x" * 999, None),
    (HEAD + b"Content-Length: 0000000000000000000003\r\n\r\nabc", WHOLE),
    (HEAD + b"Content-Length: 10\r\nExpect: 100-continue\r\n\r\n", None),
    (CHUNKED + b"5\r\nhello\r\n", None),
    (CHUNKED + b"5\r\nhello\r\n0\r\n\r\n", WHOLE),
    (CHUNKED + b"5\r\n0\r\n\r\n\r\n", None),  # "0 CRLF CRLF" as a chunk's data
    (CHUNKED + b"5\r\n0\r\n\r\n\r\n0\r\n\r\n", WHOLE),
    (CHUNKED + b"5 ; name=value\r\nhello\r\n0\r\n\r\n", WHOLE),
    (CHUNKED + b"A\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n", WHOLE),
    (CHUNKED + b"0\r\nX-Trailer: 1\r\n", None),
    (HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", WHOLE),
])
def test_end_of_request(data, end):
    assert RequestReader(data).end == (len(data) if end == WHOLE else end)


@pytest.mark.parametrize("data", [
    GET + GET,
    HEAD + b"Content-Length: 10\r\n\r\n1234567890" + GET,
    CHUNKED + b"5\r\nhello\r\n3;x=1\r\nabc\r\n0\r\nT: 1\r\n\r\n" + GET,
])
def test_the_same_end_whatever_the_bytes_come_in(data):
    """A trickling client sends its request a byte at a time."""
    whole = RequestReader(data).end
    reader = RequestReader()
    ends = {reader.feed(data[i:i + 1]) for i in range(len(data))}
    assert reader.end == whole and ends == {None, whole}


@pytest.mark.parametrize("framing", [
    b"Content-Length: 5\r\nContent-Length: 5\r\n",
    b"Content-Length: +5\r\n",
    b"Content-Length: 5, 5\r\n",
    b"Content-Length: \r\n",
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked, gzip\r\n",
    b"Transfer-Encoding: identity\r\n",
    b"X-Folded: a\r\n b\r\nContent-Length: 5\r\n",
    b"Expect: 200-ok\r\nContent-Length: 5\r\n",
])
def test_framing_gunicorn_refuses_ends_at_the_head(framing):
    """gunicorn's parser answers these 400, 417 or 501 before reading a
    body: the thread gets them at once, and never waits for more."""
    data = HEAD + framing + b"\r\n"
    assert RequestReader(data).end == len(data)


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\nHost: x\n\n",
    CHUNKED + b"5\r\nhello!!",  # no CRLF after the chunk's data
    CHUNKED + b"zz\r\n",
])
def test_malformed_requests_go_to_the_parser_at_once(data):
    assert RequestReader(data).end == len(data)


def test_100_continue_is_asked_by_http_1_1_only():
    asked = RequestReader(HEAD + b"Expect: 100-Continue\r\nContent-Length: 3\r\n\r\n")
    assert asked.expects_continue and asked.end is None
    old = b"POST /token HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    assert not RequestReader(old).expects_continue


@pytest.mark.parametrize("data,status", [
    (b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD_BYTES, 431),
    (b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n", 431),
    (HEAD + b"Content-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1), 413),
    (HEAD + b"Content-Length: 99999999999999999999999\r\n\r\n", 413),
    (CHUNKED + b"10001\r\n", 413),
    (CHUNKED + b"ffffffffffffffffffffffff\r\n", 413),
    (CHUNKED + b"1\r\na\r\n" * (MAX_BODY_BYTES // 6 + 1), 413),
    (CHUNKED + b"1;" + b"x" * MAX_BODY_BYTES, 413),
])
def test_limits_are_refused_by_the_loop(data, status):
    with pytest.raises(RequestRefusedError) as refused:
        RequestReader(data)
    assert refused.value.status == status
    assert refused.value.response().startswith(b"HTTP/1.1 %d " % status)
    assert b"\r\nConnection: close\r\n" in refused.value.response()


def test_a_body_at_the_limit_is_read():
    body = b"x" * MAX_BODY_BYTES
    data = HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body
    assert RequestReader(data).end == len(data)
