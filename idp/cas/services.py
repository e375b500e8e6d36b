"""Which registered CAS service a ``service`` URL is (CAS 3.0 §2.2.1):
a client registered with ``--cas-service`` (exact URLs, or prefixes ending
in ``/``; never a pattern). Tickets go only to a registered service."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from sqlalchemy import select

from idp.clients.cache import ClientInfo
from idp.clients.models import Client
from idp.extensions import db
from idp.runtime import Runtime

#: Longest service URL accepted, characters.
MAX_SERVICE_URL = 2048


def plain_service_url(service: str | None) -> bool:
    """Whether ``service`` may name a service at all: an absolute http(s)
    URL of at most :data:`MAX_SERVICE_URL` characters, without user
    information, a fragment, a backslash, a space or control character, or
    a dot segment (which could leave a registered prefix once a browser or
    a servlet container resolved it)."""
    if (not service or len(service) > MAX_SERVICE_URL or "\\" in service
            or any(ord(character) < 0x21 or ord(character) == 0x7F for character in service)):
        # urlsplit drops tabs and line breaks, which would come back in a
        # redirect's Location: any control character or space is refused.
        return False
    try:
        parts = urlsplit(service)
    except ValueError:
        return False
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
        return False
    if parts.username is not None or parts.password is not None or "#" in service:
        return False
    # A dot segment, also with a path parameter (Tomcat reads "..;x" as "..").
    return not any(segment.split(";")[0] in (".", "..")
                   for segment in unquote(parts.path).split("/"))


def matches(registered: str, service: str) -> bool:
    """Whether ``service`` is the registered service URL ``registered``:
    the same string, or, for a registration ending in ``/``, one that
    begins with it."""
    return service == registered or (registered.endswith("/") and service.startswith(registered))


def registration_for(client: ClientInfo, service: str) -> str:
    """The registered service URL of ``client`` that ``service`` matches
    (the exact one, else the longest prefix): where its single logout goes,
    so that a user never chooses that URL. ``service`` itself when none
    does (the caller found the client by it)."""
    matching = [url for url in client.cas_services if matches(url, service)]
    return min(matching, key=lambda url: (url != service, -len(url))) if matching else service


def find_service(rt: Runtime, service: str | None) -> ClientInfo | None:
    """The CAS service whose registration matches ``service``: an exact
    registration first, else the longest matching prefix (the first
    registered among equals); None for none, or a URL that
    :func:`plain_service_url` refuses."""
    if not plain_service_url(service):
        return None
    candidates = []
    for row_id, client_id, urls in db.session.execute(select(
            Client.id, Client.client_id, Client.cas_services).where(
            Client.cas_services.is_not(None))):
        candidates += [(url != service, -len(url), row_id, client_id)
                       for url in urls or () if matches(url, service)]
    return rt.clients.get(min(candidates)[3]) if candidates else None
