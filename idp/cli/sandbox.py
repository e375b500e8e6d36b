"""``idp sandbox``: seed and serve the sandbox data-sharing gateway.

The sandbox accepts the access keys in ``IDP_SANDBOX_KEYS``
(``key=secret[,key=secret...]``); without it, only the development pair
:data:`DEV_ACCESS_KEY` / :data:`DEV_SECRET`, which is refused when
``IDP_MODE=production``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import click

#: The development key pair the sandbox accepts when IDP_SANDBOX_KEYS is unset.
#: Public knowledge (documented in docs/connectors.md): never for production.
DEV_ACCESS_KEY = "sandbox-dev"
DEV_SECRET = "sandbox-dev-secret-not-for-production"


def default_path() -> str:
    """``sandbox.sqlite3`` in the instance folder (``IDP_INSTANCE_PATH`` or ./instance)."""
    return str(Path(os.environ.get("IDP_INSTANCE_PATH") or "instance") / "sandbox.sqlite3")


def sandbox_keys(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The key pairs the sandbox accepts.

    :param environ: where to read ``IDP_SANDBOX_KEYS`` and ``IDP_MODE`` (default ``os.environ``).
    :returns: access key -> secret.
    :raises click.ClickException: malformed ``IDP_SANDBOX_KEYS``, or the
        development pair in production mode.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get("IDP_SANDBOX_KEYS", "").strip()
    if not raw:
        if environ.get("IDP_MODE", "development") == "production":
            raise click.ClickException(
                "IDP_MODE=production: the sandbox's development key is refused; "
                "set IDP_SANDBOX_KEYS=key=secret (and do not expose a sandbox in production)")
        return {DEV_ACCESS_KEY: DEV_SECRET}
    keys: dict[str, str] = {}
    for item in raw.split(","):
        key, sep, secret = item.strip().partition("=")
        if not sep or not key or not secret:
            raise click.ClickException("IDP_SANDBOX_KEYS must look like key=secret[,key=secret]")
        keys[key] = secret
    return keys


@click.group()
def sandbox() -> None:
    """The sandbox data-sharing gateway (synthetic registries, SMS and mail outboxes)."""


@sandbox.command("seed")
@click.option("--people", default=200, show_default=True, type=click.IntRange(min=9),
              help="People in the dataset, the 9 fixed demo people included.")
@click.option("--entities", default=40, show_default=True, type=click.IntRange(min=3),
              help="Legal entities, the 3 fixed demo entities included.")
@click.option("--seed", "seed_value", default=0, show_default=True, type=int,
              help="Generator seed: the same seed gives the same dataset.")
@click.option("--path", default=default_path, show_default="instance/sandbox.sqlite3",
              type=click.Path(dir_okay=False), help="SQLite file to (re)create.")
def sandbox_seed(people: int, entities: int, seed_value: int, path: str) -> None:
    """Create the synthetic dataset (replaces an existing one, outbox included)."""
    from connectors.sandbox.dataset import seed

    seed(path, people=people, entities=entities, seed=seed_value)
    click.echo(f"seeded {people} people and {entities} legal entities into {path}")


@sandbox.command("serve")
@click.option("--port", default=5900, show_default=True, type=click.IntRange(1, 65535),
              help="TCP port of the gateway (HTTP).")
@click.option("--smtp-port", default=5925, show_default=True, type=click.IntRange(1, 65535),
              help="TCP port of the SMTP receiver, which keeps the mail it is sent.")
@click.option("--path", default=default_path, show_default="instance/sandbox.sqlite3",
              type=click.Path(dir_okay=False), help="Dataset made by `idp sandbox seed`.")
@click.option("--outbox-page", is_flag=True,
              help="Also serve /outbox and /mail, unsigned pages of the text messages and "
                   "e-mails sent (demos).")
def sandbox_serve(port: int, smtp_port: int, path: str, outbox_page: bool) -> None:
    """Serve the sandbox gateway and its SMTP receiver on 127.0.0.1
    (werkzeug, threaded; aiosmtpd)."""
    from werkzeug.serving import make_server

    from connectors.sandbox.app import create_sandbox
    from connectors.sandbox.smtp import SandboxSmtp

    keys = sandbox_keys()
    try:
        app = create_sandbox(path, keys, outbox_page=outbox_page)
        smtp = SandboxSmtp(path, smtp_port)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        server = make_server("127.0.0.1", port, app, threaded=True)
    except OSError as exc:
        raise click.ClickException(f"port {port}: {exc.strerror}") from None
    try:
        smtp.start()
    except OSError as exc:
        server.server_close()
        raise click.ClickException(f"SMTP port {smtp_port}: {exc.strerror}") from None
    click.echo(f"sandbox gateway on http://127.0.0.1:{port} (keys: {', '.join(keys)}), "
               f"SMTP receiver on 127.0.0.1:{smtp_port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        smtp.stop()
