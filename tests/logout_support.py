"""A relying party's logout endpoint on 127.0.0.1 that records what the
provider's single-logout worker sends it (back-channel logout tokens, CAS
``LogoutRequest`` documents), answering each POST with a chosen status."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


class LogoutReceiver:
    """Records each POST's form fields (one value per name) and headers.

    :param status: the status every POST is answered with.
    :param redirect_to: answer 302 to this URL instead (a redirect the
        provider must not follow).
    """

    def __init__(self, status: int = 200, redirect_to: str | None = None) -> None:
        self.status = status
        self.received: list[dict[str, str]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                fields = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                with receiver._arrived:
                    receiver.received.append(fields)
                    receiver.headers.append(dict(self.headers))
                    receiver.paths.append(self.path)
                    receiver._arrived.notify_all()
                if redirect_to is not None:
                    self.send_response(302)
                    self.send_header("Location", redirect_to)
                else:
                    self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/logout"

    def wait(self, count: int = 1, timeout: float = 15.0) -> list[dict[str, str]]:
        """The first ``count`` POSTs, waiting up to ``timeout`` seconds.

        :raises AssertionError: fewer arrived.
        """
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.received)} of {count} deliveries arrived")
                self._arrived.wait(left)
            return list(self.received[:count])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
