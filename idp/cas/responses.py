"""The answers of the CAS validation and proxy endpoints (CAS 3.0 §2.5 to
§2.7, Appendix A and B): XML in the ``http://www.yale.edu/tp/cas``
namespace, or JSON with ``format=JSON``; and CAS 1.0's two lines
(§2.4.2). Every value is escaped; attribute values that are not text
(``verified_claims``) are JSON inside the XML element."""

from __future__ import annotations

import json
import re
from typing import Any
from xml.sax.saxutils import escape as _escape

#: The XML namespace of CAS answers.
NAMESPACE = "http://www.yale.edu/tp/cas"

#: Error codes of CAS 3.0 §2.5.3 and §2.7.2.
INVALID_REQUEST = "INVALID_REQUEST"
INVALID_TICKET_SPEC = "INVALID_TICKET_SPEC"
UNAUTHORIZED_SERVICE_PROXY = "UNAUTHORIZED_SERVICE_PROXY"
UNAUTHORIZED_SERVICE = "UNAUTHORIZED_SERVICE"
INVALID_PROXY_CALLBACK = "INVALID_PROXY_CALLBACK"
INVALID_TICKET = "INVALID_TICKET"
INVALID_SERVICE = "INVALID_SERVICE"
INTERNAL_ERROR = "INTERNAL_ERROR"


#: Characters XML 1.0 does not allow (§2.2), which no escape can carry.
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def escape(text: str) -> str:
    """``text`` as XML character data: markup escaped, and the characters
    XML cannot carry (control characters a user might put in a name)
    replaced by U+FFFD, so the answer always parses."""
    return _escape(_NOT_XML.sub("\ufffd", text))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _xml(body: str) -> tuple[str, str]:
    return (f"<cas:serviceResponse xmlns:cas=\"{NAMESPACE}\">{body}</cas:serviceResponse>\n",
            "application/xml; charset=utf-8")


def _json(body: dict) -> tuple[str, str]:
    return (json.dumps({"serviceResponse": body}, ensure_ascii=False),
            "application/json; charset=utf-8")


def success(user: str, attributes: dict[str, list[Any]] | None, *, iou: str | None = None,
            proxies: list[str] | None = None, as_json: bool = False) -> tuple[str, str]:
    """``authenticationSuccess``: the user, the attributes (None to leave
    them out, as ``/serviceValidate`` of CAS 2.0 does), the PGT IOU and the
    proxy chain.

    :returns: ``(body, content type)``.
    """
    if as_json:
        answer: dict[str, Any] = {"user": user}
        if iou is not None:
            answer["proxyGrantingTicket"] = iou
        if proxies:
            answer["proxies"] = list(proxies)
        if attributes is not None:
            answer["attributes"] = attributes
        return _json({"authenticationSuccess": answer})
    parts = [f"<cas:user>{escape(user)}</cas:user>"]
    if attributes is not None:
        parts.append("<cas:attributes>")
        for name, values in attributes.items():
            parts += [f"<cas:{name}>{escape(_text(value))}</cas:{name}>" for value in values]
        parts.append("</cas:attributes>")
    if iou is not None:
        parts.append(f"<cas:proxyGrantingTicket>{escape(iou)}</cas:proxyGrantingTicket>")
    if proxies:
        parts.append("<cas:proxies>" + "".join(
            f"<cas:proxy>{escape(proxy)}</cas:proxy>" for proxy in proxies) + "</cas:proxies>")
    return _xml("<cas:authenticationSuccess>" + "".join(parts) + "</cas:authenticationSuccess>")


def failure(code: str, description: str, *, as_json: bool = False) -> tuple[str, str]:
    """``authenticationFailure`` with ``code`` (this module's constants)."""
    if as_json:
        return _json({"authenticationFailure": {"code": code, "description": description}})
    return _xml(f"<cas:authenticationFailure code=\"{code}\">{escape(description)}"
                "</cas:authenticationFailure>")


def proxy_success(ticket: str, *, as_json: bool = False) -> tuple[str, str]:
    """``proxySuccess`` with the proxy ticket (§2.7.2)."""
    if as_json:
        return _json({"proxySuccess": {"proxyTicket": ticket}})
    return _xml(f"<cas:proxySuccess><cas:proxyTicket>{escape(ticket)}</cas:proxyTicket>"
                "</cas:proxySuccess>")


def proxy_failure(code: str, description: str, *, as_json: bool = False) -> tuple[str, str]:
    """``proxyFailure`` with ``code`` (§2.7.2)."""
    if as_json:
        return _json({"proxyFailure": {"code": code, "description": description}})
    return _xml(f"<cas:proxyFailure code=\"{code}\">{escape(description)}</cas:proxyFailure>")


def cas1(user: str | None) -> str:
    """The CAS 1.0 ``/validate`` answer (§2.4.2): ``yes`` and the user, or
    ``no`` and an empty line."""
    return f"yes\n{user}\n" if user is not None else "no\n\n"
