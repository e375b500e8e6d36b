"""The root ``idp`` command group's class, and the application its commands run in."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup

from idp.cli.unit import in_units
from idp.config import ConfigError


def create_command_app() -> Flask:
    """The provider's application for one command, created when a command
    that needs it runs (``with_appcontext``), never for help or a lookup.

    :returns: the application; its pooled database connections are closed
        when the command's app context ends.
    :raises click.ClickException: invalid settings, or a database that
        cannot be reached.
    """
    from sqlalchemy.exc import OperationalError

    from idp import create_app
    from idp.extensions import db

    try:
        # No single-logout thread in a short command: it would die with the
        # command, holding what it claimed until its lease ends. What a
        # command queues (a suspension's logout notices) the running
        # provider's workers send.
        app = create_app({"logout": {"worker": False}})
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    except OperationalError as exc:
        raise click.ClickException(f"the database cannot be reached: {exc.orig}") from None

    # A command is one short unit of work: close pooled connections when its
    # app context ends instead of leaving them to the garbage collector.
    @app.teardown_appcontext
    def _close_pool(_exc: BaseException | None) -> None:
        db.session.remove()
        db.engine.dispose()

    return app


class IdpGroup(FlaskGroup):
    """Flask's command group without its generic options (``--app``,
    ``--env-file``, ``--debug``) and plugin commands: the ``idp`` command
    serves one application, and schema revisions are made by developers,
    not operators (so Flask-Migrate's ``db`` group is replaced by ours).

    Its commands are all registered in :mod:`idp.cli`, none on ``app.cli``,
    so listing them (``idp --help``) and looking one up never create the
    application: creating it makes the instance folder, secrets and database
    and takes a second, which help and a mistyped command name must not do.
    The app is created only when a command that needs it runs
    (``with_appcontext``), and each such command is one unit of work. The
    command modules import only click at their top for the same reason.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.params = [p for p in self.params if p.name not in ("env_file", "app", "debug")]

    def _load_plugin_commands(self) -> None:
        return None

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Register ``cmd`` (a command or a group); each of its commands runs
        as one unit of work (:func:`idp.cli.unit.in_units`)."""
        super().add_command(in_units(cmd), name)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """The registered command ``name``, or None; the app is not loaded."""
        return click.Group.get_command(self, ctx, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The registered commands' names, sorted; the app is not loaded."""
        return click.Group.list_commands(self, ctx)
