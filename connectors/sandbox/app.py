"""The sandbox gateway: a small Flask app speaking the data-sharing gateway
protocol of ``docs/connectors.md`` (signatures, clock skew and nonce replay
checked as the real gateway does) over the synthetic dataset of
:mod:`connectors.sandbox.dataset`.

For development, tests and the demo only: it must never be reachable from a
production deployment (``idp sandbox serve`` refuses its default key in
production mode).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask, g, jsonify, request
from markupsafe import escape

from connectors import signing
from connectors.identifiers import (
    ID_CHECK,
    USCC_ALPHABET,
    id_check_character,
    uscc_check_character,
)
from connectors.sandbox.dataset import connect, read_mail, remember_nonce

#: Largest accepted difference between the request date and the sandbox clock, seconds.
MAX_SKEW = 90
#: A nonce must be remembered while a request carrying it could still pass
#: the skew check: 90 s either side, plus a margin.
NONCE_TTL = 2 * MAX_SKEW + 30
#: Scores of the face comparison, by decision.
FACE_SCORES = {"pass": 0.97, "fail": 0.12, "retry": 0.0}


class GatewayError(Exception):
    """An error answer of the protocol (``{"error": code[, "field": name]}``)."""

    def __init__(self, status: int, code: str, field: str | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.field = field


class SandboxState:
    """In-process hooks for tests (not reachable over HTTP).

    :ivar requests: authenticated requests answered, per path.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self._failures: dict[str, list] = {}

    def inject_failures(self, path: str, count: int, status: int = 503) -> None:
        """Answer the next ``count`` requests to ``path`` with HTTP ``status``
        (before any check), to simulate an outage."""
        with self._lock:
            self._failures[path] = [count, status]

    def take_failure(self, path: str) -> int | None:
        with self._lock:
            entry = self._failures.get(path)
            if not entry or entry[0] <= 0:
                return None
            entry[0] -= 1
            return entry[1]

    def count(self, path: str) -> None:
        with self._lock:
            self.requests[path] += 1


def _field(data: dict, name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise GatewayError(400, "invalid_request", name)
    return value.strip()


def _id_number(data: dict) -> str:
    number = _field(data, "id_number").upper()
    if (len(number) != 18 or not number[:17].isdigit() or number[17] not in ID_CHECK
            or id_check_character(number[:17]) != number[17]):
        raise GatewayError(400, "invalid_request", "id_number")
    return number


def _reference() -> str:
    return "SBX-" + uuid.uuid4().hex[:16].upper()


def create_sandbox(data_path: str, keys: dict[str, str],
                   clock: Callable[[], datetime] | None = None,
                   outbox_page: bool = False) -> Flask:
    """The sandbox gateway app.

    :param data_path: SQLite file made by :func:`connectors.sandbox.dataset.seed`.
    :param keys: accepted access keys -> their HMAC secrets.
    :param clock: the sandbox's wall clock (default: now, UTC).
    :param outbox_page: also serve ``GET /outbox`` and ``GET /mail``, unsigned
        HTML pages of the latest text messages and e-mails, for people
        watching a demo (a real gateway has nothing like them).
    :returns: a Flask app; ``app.extensions["gateway_sandbox"]`` is its
        :class:`SandboxState`.
    :raises FileNotFoundError: if the dataset does not exist or has an older layout.
    """
    connect(data_path).close()
    if not keys:
        raise ValueError("the sandbox needs at least one access key")
    now = clock or (lambda: datetime.now(UTC))
    app = Flask(__name__)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    state = SandboxState()
    app.extensions["gateway_sandbox"] = state
    keys = dict(keys)

    @app.errorhandler(GatewayError)
    def _error(exc: GatewayError):
        body = {"error": exc.code}
        if exc.field:
            body["field"] = exc.field
        return jsonify(body), exc.status

    @app.errorhandler(404)
    def _not_found(_exc):
        return jsonify(error="not_found"), 404

    @app.errorhandler(405)
    def _bad_method(_exc):
        return jsonify(error="method_not_allowed"), 405

    @app.before_request
    def authenticate():
        """Fault injection, then the protocol's checks in the gateway's order:
        key, signature (over the digest of the body received), date skew, nonce."""
        if outbox_page and request.path in ("/outbox", "/mail"):
            g.db = connect(data_path)
            return None
        failure = state.take_failure(request.path)
        if failure:
            return jsonify(error="unavailable"), failure
        headers = request.headers
        parsed = signing.parse_authorization(headers.get("Authorization", ""))
        key = headers.get(signing.HEADER_KEY, "")
        if parsed is None or parsed[0] != key:
            raise GatewayError(401, "bad_signature")
        if key not in keys:
            raise GatewayError(401, "unknown_key")
        date = headers.get(signing.HEADER_DATE, "")
        nonce = headers.get(signing.HEADER_NONCE, "")
        query = request.query_string.decode("latin-1")
        if not signing.verify_signature(keys[key], request.method, request.path, query, date,
                                        nonce, request.get_data(),
                                        headers.get(signing.HEADER_DIGEST, ""), parsed[1]):
            raise GatewayError(401, "bad_signature")
        try:
            sent = signing.parse_date(date)
        except ValueError:
            raise GatewayError(400, "invalid_request", signing.HEADER_DATE) from None
        if abs((now() - sent).total_seconds()) > MAX_SKEW:
            raise GatewayError(401, "clock_skew")
        if len(nonce) < signing.MIN_NONCE_LENGTH or not nonce.isprintable():
            raise GatewayError(400, "invalid_request", signing.HEADER_NONCE)
        g.db = connect(data_path)
        if not remember_nonce(g.db, key, nonce, NONCE_TTL):
            raise GatewayError(401, "replayed_nonce")
        state.count(request.path)
        return None

    @app.teardown_request
    def _close(_exc):
        conn = g.pop("db", None)
        if conn is not None:
            conn.close()

    def body() -> dict:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise GatewayError(400, "invalid_request", "body")
        return data

    @app.post("/population/v1/verify")
    def population():
        data = body()
        name, number = _field(data, "name"), _id_number(data)
        row = g.db.execute("SELECT name, status FROM people WHERE id_number = ?",
                           (number,)).fetchone()
        if row is None:
            result = "not_found"
        elif row["name"] != name:
            result = "mismatch"
        elif row["status"] in ("deceased", "cancelled"):
            result = row["status"]
        else:
            result = "match"
        return jsonify(result=result, reference=_reference())

    @app.post("/legal-entity/v1/verify")
    def legal_entity():
        data = body()
        code, name = _field(data, "uscc").upper(), _field(data, "name")
        if (len(code) != 18 or any(c not in USCC_ALPHABET for c in code)
                or uscc_check_character(code[:17]) != code[17]):
            raise GatewayError(400, "invalid_request", "uscc")
        representative = None
        if "representative_name" in data or "representative_id_number" in data:
            representative = (_field(data, "representative_name"),
                              _id_number({"id_number": data.get("representative_id_number")}))
        row = g.db.execute("SELECT name, status, representative_name, representative_id "
                           "FROM entities WHERE uscc = ?", (code,)).fetchone()
        if row is None:
            result = "not_found"
        elif row["name"] != name:
            result = "mismatch"
        elif row["status"] == "revoked":
            result = "revoked"
        elif representative and representative != (row["representative_name"],
                                                    row["representative_id"]):
            result = "representative_mismatch"
        else:
            result = "match"
        return jsonify(result=result, reference=_reference())

    @app.post("/social-security/v1/card")
    def social_security_card():
        data = body()
        number, card = _id_number(data), _field(data, "card_number").upper()
        row = g.db.execute("SELECT card_status FROM people WHERE id_number = ? AND "
                           "card_number = ?", (number, card)).fetchone()
        return jsonify(status=row["card_status"] if row else "not_found",
                       reference=_reference())

    @app.post("/carrier/v1/verify")
    def carrier():
        data = body()
        name, number, phone = _field(data, "name"), _id_number(data), _phone(data)
        row = g.db.execute("SELECT name, id_number FROM people WHERE phone = ?",
                           (phone,)).fetchone()
        if row is None:
            result = "not_found"
        elif row["name"] == name and row["id_number"] == number:
            result = "match"
        else:
            result = "mismatch"
        return jsonify(result=result, reference=_reference())

    @app.post("/face/v1/compare")
    def face():
        # The token alone decides (documented): "pass-*", "fail-*", else retry.
        # No image is ever received or stored.
        data = body()
        _id_number(data)
        _field(data, "name")
        token = _field(data, "liveness_token")
        decision = ("pass" if token.startswith("pass-") else
                    "fail" if token.startswith("fail-") else "retry")
        return jsonify(score=FACE_SCORES[decision], decision=decision,
                       reference=_reference())

    @app.post("/sms/v1/send")
    def sms_send():
        data = body()
        template, phone = _field(data, "template"), _phone(data)
        params = data.get("params", {})
        if not isinstance(params, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
            raise GatewayError(400, "invalid_request", "params")
        message_id = "SBX-SMS-" + uuid.uuid4().hex[:16].upper()
        g.db.execute("INSERT INTO outbox (message_id, phone, template, params, sent_at) "
                     "VALUES (?, ?, ?, ?, ?)",
                     (message_id, phone, template, json.dumps(params, ensure_ascii=False),
                      time.time()))
        return jsonify(message_id=message_id)

    @app.get("/sms/v1/outbox")
    def sms_outbox():
        phone = request.args.get("phone", "")
        if not _is_e164(phone):
            raise GatewayError(400, "invalid_request", "phone")
        rows = g.db.execute("SELECT message_id, template, params, sent_at FROM outbox "
                            "WHERE phone = ? ORDER BY id", (phone,)).fetchall()
        return jsonify(messages=[{"message_id": r["message_id"], "template": r["template"],
                                  "params": json.loads(r["params"]), "sent_at": r["sent_at"]}
                                 for r in rows])

    @app.get("/outbox")
    def outbox_html():
        if not outbox_page:
            raise GatewayError(404, "not_found")
        rows = g.db.execute("SELECT phone, template, params, sent_at FROM outbox "
                            "ORDER BY id DESC LIMIT 50").fetchall()
        items = "".join(
            f"<tr><td>{escape(time.strftime('%H:%M:%S', time.localtime(r['sent_at'])))}</td>"
            f"<td>{escape(r['phone'])}</td><td>{escape(r['template'])}</td>"
            f"<td>{escape(json.loads(r['params']).get('code', ''))}</td></tr>" for r in rows)
        return (f"<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=3>"
                f"<title>Sandbox SMS outbox</title><h1>Sandbox SMS outbox</h1>"
                f"<p>Text messages the sandbox gateway would have sent (newest first). "
                f"E-mails: <a href=\"/mail\">/mail</a>.</p>"
                f"<table border=1 cellpadding=4><tr><th>time</th><th>to</th><th>template</th>"
                f"<th>code</th></tr>{items}</table>")

    @app.get("/mail/v1/outbox")
    def mail_outbox():
        to = request.args.get("to", "")
        if "@" not in to or len(to) > 254:
            raise GatewayError(400, "invalid_request", "to")
        return jsonify(messages=read_mail(data_path, to))

    @app.get("/mail")
    def mail_html():
        if not outbox_page:
            raise GatewayError(404, "not_found")
        rows = g.db.execute("SELECT rcpt, subject, body, received_at FROM mails "
                            "ORDER BY id DESC LIMIT 30").fetchall()
        items = "".join(
            f"<tr><td>{escape(time.strftime('%H:%M:%S', time.localtime(r['received_at'])))}"
            f"</td><td>{escape(r['rcpt'])}</td><td>{escape(r['subject'])}</td>"
            f"<td><pre style=\"white-space:pre-wrap\">{_linkify(r['body'])}</pre></td></tr>"
            for r in rows)
        return (f"<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=5>"
                f"<title>Sandbox mail outbox</title><h1>Sandbox mail outbox</h1>"
                f"<p>E-mails the sandbox's SMTP receiver took instead of delivering them "
                f"(newest first). Text messages: <a href=\"/outbox\">/outbox</a>.</p>"
                f"<table border=1 cellpadding=4><tr><th>time</th><th>to</th><th>subject</th>"
                f"<th>text</th></tr>{items}</table>")

    @app.get("/sandbox/people")
    def sandbox_people():
        try:
            limit = min(max(int(request.args.get("limit", "5")), 1), 100)
        except ValueError:
            raise GatewayError(400, "invalid_request", "limit") from None
        rows = g.db.execute("SELECT name, id_number, status, card_number, card_status, phone "
                            "FROM people ORDER BY idx LIMIT ?", (limit,)).fetchall()
        return jsonify(people=[dict(r) for r in rows])

    return app


#: An http(s) URL in a mail's text, made a link on the /mail page.
_URL = re.compile(r"https?://[^\s<>\"']+")


def _linkify(text: str) -> str:
    """``text`` HTML-escaped, with its http(s) URLs as links; a URL ends at
    white space, a quote or an angle bracket, and every piece is escaped, so
    nothing of the mail can add markup."""
    out, last = [], 0
    for match in _URL.finditer(text):
        url = escape(match.group(0))
        out += [str(escape(text[last:match.start()])), f'<a href="{url}">{url}</a>']
        last = match.end()
    return "".join(out) + str(escape(text[last:]))


def _is_e164(phone: str) -> bool:
    return phone.startswith("+") and phone[1:].isdigit() and 8 <= len(phone) <= 16


def _phone(data: dict) -> str:
    phone = _field(data, "phone")
    if not _is_e164(phone):
        raise GatewayError(400, "invalid_request", "phone")
    return phone

