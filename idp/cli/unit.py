"""Each ``idp`` command that runs in the application is one unit of work
(:mod:`idp.unit_of_work`): committed when it ends normally, rolled back when
it fails, with its after-commit callbacks (notices, cache invalidations) run
only after the commit. Imports only click at its top, as the command
modules do (``idp --help`` must stay fast)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click


def _rollback() -> None:
    from flask import has_app_context

    from idp import unit_of_work

    if has_app_context():
        unit_of_work.rollback()


def command_unit(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Run the command callback ``callback`` as one unit of work, when it
    ran in an application context (``with_appcontext`` keeps the context
    until the command ends; commands without one are left alone).

    A :class:`click.ClickException` (or ``Abort``/``Exit``) keeps its own
    message and exit status; any other exception, a failed commit included,
    becomes a :class:`click.ClickException` (exit status 1) saying that
    nothing was changed, after the rollback.
    """
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        from flask import has_app_context

        from idp import unit_of_work

        try:
            result = callback(*args, **kwargs)
            if has_app_context():
                unit_of_work.commit()
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            _rollback()
            raise
        except Exception as exc:
            _rollback()
            raise click.ClickException(
                f"{type(exc).__name__}: {exc} (nothing was changed)") from exc
        return result
    return run


def in_units(command: click.Command) -> click.Command:
    """Make ``command``, or every command of the group ``command`` and of its
    subgroups, run as units of work (:func:`command_unit`).

    :returns: ``command``, changed in place.
    """
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            in_units(sub)
    elif command.callback is not None:
        command.callback = command_unit(command.callback)
    return command
