"""Department sites (examples/relying_party) served on 127.0.0.1 against a
live provider, for the relying-party example and browser tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import make_server

from examples.relying_party.app import create_relying_party
from tests.conftest import free_port


@dataclass
class RelyingParty:
    """A live relying party: its base URL, client id and server."""

    url: str
    client_id: str
    server: Any

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_relying_party(provider, title: str) -> RelyingParty:
    """Register a trusted client for a new relying party and serve it from a thread."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    client = provider.create_client(trusted=True, redirect_uri=f"{url}/callback",
                                    post_logout_redirect_uri=f"{url}/",
                                    backchannel_logout_uri=f"{url}/backchannel-logout",
                                    backchannel_logout_session_required=True)
    app = create_relying_party(provider.url, client.client_id, client.client_secret, url,
                               title)
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return RelyingParty(url, client.client_id, server)
