"""Lazy migration: a department that cannot export its users answers, at a
user's first login, whether a login name and password are right, and who
the user is (docs/migration.md, "Lazy migration").

The protocol, one call::

    POST {endpoint}                         signed like every gateway call
    Content-Type: application/json          (connectors.signing: the
    {"username": "...", "password": "..."}   gateway's key and secret)

    200 {"match": false}
    200 {"match": true, "user": {"legacy_id": "1001", "username": "zhangsan",
         "name": "张三", "resident_id": "...", "phone": "...", "email": "...",
         "status": "active" | "disabled" | "deleted",
         "created_at": "2019-03-01T08:00:00+08:00", "last_login_at": null}}

Only ``legacy_id`` is required in ``user``; the other members may be null
or absent. Any other answer (a redirect, a 4xx or 5xx, a body that is not
that JSON, a timeout) is :class:`LegacyLoginUnavailableError`: the login
fails like a wrong password and nothing is created. Redirects are never
followed, and the endpoint must be https (http only on a loopback host,
for tests).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from connectors.signing import sign_request

#: Calls to one department at a time, each on a thread of its own.
MAX_CALLS = 4
#: Largest answer read, bytes: a profile is a few hundred.
MAX_ANSWER = 64 * 1024
#: ``status`` values of an answer.
STATUSES = ("active", "disabled", "deleted")
#: Longest member of an answer's ``user``, characters.
MAX_FIELD = 255
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_FIELDS = ("legacy_id", "username", "name", "resident_id", "phone", "email", "status",
           "created_at", "last_login_at")


class LegacyLoginUnavailableError(Exception):
    """The department's login API did not answer as the protocol says; the
    message names why, never the password."""


@dataclass(frozen=True)
class LegacyProfile:
    """Who the department says the user is, members as it sent them.

    :ivar status: ``active``, ``disabled`` or ``deleted``.
    :ivar created_at: the legacy system's text, read by the fold's rules.
    """

    legacy_id: str
    username: str | None = None
    name: str | None = None
    resident_id: str | None = None
    phone: str | None = None
    email: str | None = None
    status: str = "active"
    created_at: str | None = None
    last_login_at: str | None = None


class LegacyLogin(Protocol):
    """A department's login check."""

    def check(self, username: str, password: str) -> LegacyProfile | None:
        """The user the department knows by ``username`` and ``password``,
        or None when it says they do not match.

        :raises LegacyLoginUnavailableError: no answer of the protocol.
        """


def _profile(user: Any) -> LegacyProfile:
    if not isinstance(user, dict) or set(user) - set(_FIELDS):
        raise LegacyLoginUnavailableError("the answer's user is not an object of the "
                                          "protocol's members")
    values: dict[str, str | None] = {}
    for name in _FIELDS:
        value = user.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and name == "legacy_id":
            value = str(value)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_FIELD
                                  or not value.isprintable()):
            raise LegacyLoginUnavailableError(f"the answer's user.{name} is not printable "
                                              f"text of at most {MAX_FIELD} characters")
        values[name] = value
    if not values["legacy_id"] or not values["legacy_id"].strip():
        raise LegacyLoginUnavailableError("the answer's user has no legacy_id")
    status = values.pop("status") or "active"
    if status not in STATUSES:
        raise LegacyLoginUnavailableError(f"the answer's user.status {status!r} is not one "
                                          f"of {', '.join(STATUSES)}")
    return LegacyProfile(status=status, **values)


class HttpLegacyLogin:
    """The protocol over HTTPS, signed with the gateway's key.

    :param endpoint: the department's login API URL.
    :param access_key: the gateway's access key id; ``secret`` its secret.
    :param timeout: seconds to connect, and separately to wait for the answer.
    :raises ValueError: an endpoint that is not https (or http on loopback).
    """

    def __init__(self, endpoint: str, access_key: str, secret: str, timeout: float = 5.0,
                 session: requests.Session | None = None) -> None:
        parts = urlsplit(endpoint)
        if not (parts.scheme == "https" or (parts.scheme == "http"
                                            and parts.hostname in _LOOPBACK)) \
                or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"legacy login endpoint {endpoint!r} must be an https URL "
                             "without query (http only on a loopback host)")
        self.endpoint = endpoint
        self._path = parts.path or "/"
        self.access_key = access_key
        self._secret = secret
        self.timeout = timeout
        self.session = session or requests.Session()
        # Few threads: a department that stops answering holds at most
        # these, and every other login of it waits for the deadline only.
        self._calls = ThreadPoolExecutor(max_workers=MAX_CALLS,
                                         thread_name_prefix="legacy-login")

    def __repr__(self) -> str:  # keeps the secret out of tracebacks and logs
        return f"HttpLegacyLogin({self.endpoint!r})"

    def check(self, username: str, password: str) -> LegacyProfile | None:
        """See :meth:`LegacyLogin.check`. The answer must come within twice
        ``timeout`` seconds in all: the call runs on one of a few threads of
        this connector, and the login stops waiting at the deadline even
        when the department drips its headers or body a byte at a time
        (each read within the per-read timeout)."""
        future = self._calls.submit(self._ask, username, password)
        try:
            return future.result(timeout=2 * self.timeout)
        except FutureTimeout:
            raise LegacyLoginUnavailableError(f"{self.endpoint}: no answer within "
                                              f"{2 * self.timeout:g} s") from None

    def _ask(self, username: str, password: str) -> LegacyProfile | None:
        body = json.dumps({"username": username, "password": password},
                          separators=(",", ":"), ensure_ascii=False).encode()
        headers = sign_request(self.access_key, self._secret, "POST", self._path, "", body,
                               datetime.now(UTC))
        headers["Content-Type"] = "application/json"
        deadline = time.monotonic() + 2 * self.timeout
        try:
            with self.session.post(self.endpoint, data=body, headers=headers,
                                   timeout=(self.timeout, self.timeout),
                                   allow_redirects=False, stream=True) as answer:
                if answer.status_code != 200:
                    raise LegacyLoginUnavailableError(
                        f"{self.endpoint}: HTTP {answer.status_code}")
                raw = _read(answer, deadline)
        except requests.RequestException as exc:
            raise LegacyLoginUnavailableError(f"{self.endpoint}: {type(exc).__name__}") \
                from None
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise LegacyLoginUnavailableError(f"{self.endpoint}: the answer is not JSON") \
                from None
        if not isinstance(data, dict) or not isinstance(data.get("match"), bool):
            raise LegacyLoginUnavailableError(f"{self.endpoint}: the answer has no boolean "
                                              "match")
        return _profile(data.get("user")) if data["match"] else None


def _read(answer: requests.Response, deadline: float) -> bytes:
    """The answer's body, at most :data:`MAX_ANSWER` bytes, read before
    ``deadline`` (a monotonic time): a department that drips its answer
    or sends too much is unavailable, not waited for."""
    body = bytearray()
    for part in answer.iter_content(4096):
        body += part
        if len(body) > MAX_ANSWER:
            raise LegacyLoginUnavailableError("the answer is larger than "
                                              f"{MAX_ANSWER} bytes")
        if time.monotonic() > deadline:
            raise LegacyLoginUnavailableError("the answer took too long")
    return bytes(body)


def from_settings(settings: Mapping[str, Any]) -> dict[str, LegacyLogin]:
    """Department code -> its login check, from ``legacy_login.endpoints``
    (``"H=https://...;CA=https://..."``), signed with the gateway's key.

    :raises ValueError: a malformed list, an endpoint that is not https, or
        endpoints without the gateway's access key and secret.
    """
    text = settings["legacy_login"]["endpoints"].strip()
    if not text:
        return {}
    gateway = settings["gateway"]
    if not gateway["access_key"] or not gateway["secret"]:
        raise ValueError("setting legacy_login.endpoints is set but gateway.access_key or "
                         "gateway.secret (IDP_GATEWAY__SECRET) is empty: the calls are "
                         "signed with them")
    checks: dict[str, LegacyLogin] = {}
    for item in text.split(";"):
        code, sep, endpoint = item.strip().partition("=")
        if not sep or not code.strip() or code.strip() in checks:
            raise ValueError("setting legacy_login.endpoints must look like "
                             "'H=https://...;CA=https://...', each department once")
        checks[code.strip()] = HttpLegacyLogin(endpoint.strip(), gateway["access_key"],
                                               gateway["secret"],
                                               settings["legacy_login"]["timeout"])
    return checks
