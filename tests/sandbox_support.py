"""A seeded sandbox gateway served on 127.0.0.1, for tests that need the
registries or the SMS gateway over real HTTP."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import make_server

from connectors.sandbox import create_sandbox, seed
from connectors.sandbox.app import SandboxState

KEY, SECRET = "test-key", "test-secret-0123456789"


@dataclass
class Gateway:
    """A live sandbox: its URL, in-process state hooks and dataset file."""

    url: str
    state: SandboxState
    data_path: str
    server: Any

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_sandbox(directory, people: int = 60, entities: int = 12) -> Gateway:
    """Seed a dataset in ``directory`` and serve it from a thread."""
    path = str(directory / "sandbox.sqlite3")
    seed(path, people=people, entities=entities, seed=7)
    app = create_sandbox(path, {KEY: SECRET})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Gateway(f"http://127.0.0.1:{server.server_port}",
                   app.extensions["gateway_sandbox"], path, server)
