"""``idp keys``: the provider's signing keys."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.group()
def keys() -> None:
    """Manage signing keys."""


@keys.command("rotate")
@click.option("--alg", "algs", multiple=True, help="Algorithm(s) to rotate (default: all).")
@with_appcontext
def keys_rotate(algs: tuple[str, ...]) -> None:
    """Introduce new signing keys; old ones stay published until their tokens expire."""
    from idp.oidc.keys import UnsupportedAlgorithmError
    from idp.runtime import current_runtime

    try:
        new = current_runtime().keys.rotate(algs or None)
    except UnsupportedAlgorithmError as exc:
        raise click.ClickException(f"unsupported algorithm: {exc}") from None
    for row in new:
        click.echo(f"new {row.alg} key {row.kid}")
