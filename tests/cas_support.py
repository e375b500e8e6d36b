"""A department portal that speaks CAS through ``python-cas`` (a client
nobody here wrote), served on 127.0.0.1 for the CAS tests: it logs in at
the provider's ``/cas/login``, validates the service ticket with
``CASClientV3`` (or another version), keeps the user in its own session,
and ends that session when the provider's single-logout ``LogoutRequest``
names the ticket it logged in with (``SingleLogoutMixin``)."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from cas import CASClient
from flask import Flask, jsonify, redirect, request, session
from werkzeug.serving import make_server

from tests.conftest import free_port


@dataclass
class CasPortal:
    """A live CAS portal: its base URL (also its service URL), the client
    id of its registration, what it validated, and its server."""

    url: str
    client_id: str
    server: Any
    validations: list[dict] = field(default_factory=list)
    logout_requests: list[str] = field(default_factory=list)

    @property
    def service(self) -> str:
        return f"{self.url}/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_cas_portal(provider, *, version: int = 3, renew: bool = False, **registration
                     ) -> CasPortal:
    """Register a CAS service for a new portal and serve it.

    :param registration: other :class:`idp.clients.metadata.ClientMetadata`
        fields (``trusted`` defaults to True).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    registration.setdefault("trusted", True)
    client = provider.create_client(cas=f"{url}/", **registration)
    cas = CASClient(version=version, service_url=f"{url}/", server_url=f"{provider.url}/cas/",
                    renew=renew)
    app = Flask(__name__)
    app.secret_key = secrets.token_hex(16)
    app.config["SESSION_COOKIE_NAME"] = f"cas_portal_{port}"
    portal = CasPortal(url, client.client_id, None)
    ended: set[str] = set()
    lock = threading.Lock()

    @app.route("/", methods=["GET", "POST"])
    def home():
        if request.method == "POST":
            # CAS single logout: the provider names the ticket of the session.
            message = request.form.get("logoutRequest", "")
            slos = cas.get_saml_slos(message)
            if slos:
                with lock:
                    ended.add(slos[0].text)
            # Recorded once handled: a test that sees it may look at once.
            portal.logout_requests.append(message)
            return "", 200
        ticket = request.args.get("ticket")
        if ticket:
            user, attributes, pgtiou = cas.verify_ticket(ticket)
            portal.validations.append({"ticket": ticket, "user": user,
                                       "attributes": attributes, "pgtiou": pgtiou})
            if user is None:
                return jsonify(error="not validated"), 403
            session.clear()
            session.update(user=user, ticket=ticket, attributes=attributes)
            return redirect(f"{url}/")
        with lock:
            if session.get("ticket") in ended:
                session.clear()
        return jsonify(user=session.get("user"), attributes=session.get("attributes"))

    @app.get("/login")
    def login():
        return redirect(cas.get_login_url())

    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    portal.server = server
    return portal
