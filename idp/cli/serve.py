"""Running the provider under gunicorn."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):
    def __init__(self, target: str, options: dict) -> None:
        self._target = target
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):
        from gunicorn.util import import_app

        return import_app(self._target)


def run_gunicorn(target: str, host: str, port: int, workers: int, threads: int) -> None:
    """Serve WSGI ``target`` (``module:attr``) on ``host:port`` with gthread workers; blocks."""
    _Gunicorn(target, {
        "bind": f"{host}:{port}", "workers": workers, "threads": threads,
        "worker_class": "gthread", "accesslog": None, "timeout": 30, "keepalive": 5,
        # Requests are short; a worker still busy 10 s after SIGTERM is stuck.
        "graceful_timeout": 10,
        # gunicorn 27's control socket lives at one path per user ($HOME/.gunicorn),
        # so two instances would take it from each other; the provider needs none.
        "control_socket_disable": True,
    }).run()
