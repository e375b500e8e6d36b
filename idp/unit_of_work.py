"""One unit of work per request or command (DESIGN.md, "Data flows one way").

Services add and flush; they never commit. The outermost caller ends the
unit: the view wrapper :func:`wrap_views` (every view of the application),
every ``idp`` command (:mod:`idp.cli.unit`), a fold batch (:func:`unit`).
It commits when the work returned without raising and rolls back
otherwise, so a change and the audit event describing it exist together or
not at all.

What must happen only once the change is durable (a text message or e-mail
telling a person about it) is registered with :func:`after_commit` and runs
after the unit's commit, never after a rollback. Failure audit events that
must outlive a rollback go through the deferred writer
(:func:`idp.audit.service.record_deferred`), which has its own transaction.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from idp.extensions import db

log = logging.getLogger(__name__)

#: Key of the pending after-commit callbacks in the session's ``info``.
_HOOKS = "idp_after_commit"
#: Key of the flag, in the session's ``info``, that its transaction wrote.
_WROTE = "idp_wrote"

F = TypeVar("F", bound=Callable[..., Any])


def after_commit(callback: Callable[[], Any]) -> None:
    """Run ``callback`` (no arguments) once the current unit of work has
    committed, in registration order; drop it if the unit rolls back. A
    callback that raises is logged and does not stop the others: the change
    it follows is already durable.

    :param callback: typically a notice to send (:mod:`idp.accounts.notify`).
    """
    db.session.info.setdefault(_HOOKS, []).append(callback)


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _context: Any) -> None:
    session.info[_WROTE] = True


@event.listens_for(Session, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    # A conditional UPDATE or a bulk INSERT writes without a flush.
    if not state.is_select:
        state.session.info[_WROTE] = True


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _ended(session: Session) -> None:
    session.info.pop(_WROTE, None)


def wrote() -> bool:
    """Whether the current unit of work has written to the database (so,
    on SQLite, holds the write lock until it ends).

    :returns: True after a flush, a conditional UPDATE or a bulk INSERT in
        this transaction, or with unflushed changes in the session.
    """
    if not _opened():
        return False
    session = db.session
    return bool(session.info.get(_WROTE) or session.new or session.dirty or session.deleted)


def _opened() -> bool:
    # Asking the scoped session anything opens one; a request that never
    # touched the database (discovery, a token from cached clients) has none
    # to commit, roll back or close.
    return db.session.registry.has()


def commit() -> None:
    """Commit the current unit of work, then run its :func:`after_commit`
    callbacks. A unit that wrote nothing sends no COMMIT (a token request
    that only reads must not cost the database a transaction; DESIGN.md,
    Speed): its read transaction ends with the session.

    :raises sqlalchemy.exc.SQLAlchemyError: when the commit fails; the unit
        is rolled back and its callbacks dropped first.
    """
    if not _opened():
        return
    if wrote():
        try:
            db.session.commit()
        except BaseException:
            rollback()
            raise
    for callback in db.session.info.pop(_HOOKS, []):
        try:
            callback()
        except Exception:  # noqa: BLE001 -- the change is committed; report, go on
            log.exception("An after-commit callback failed.")


def rollback() -> None:
    """Roll back the current unit of work and drop its :func:`after_commit`
    callbacks. A failing rollback (a dead connection) is logged, not raised,
    so it cannot hide the error that caused it."""
    if not _opened():
        return
    db.session.info.pop(_HOOKS, None)
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 -- keep the first error visible
        log.exception("Rolling back the unit of work failed.")


@contextmanager
def unit() -> Iterator[None]:
    """One unit of work as a ``with`` block: :func:`commit` when the block
    ends normally, :func:`rollback` (and re-raise) when it raises. For the
    CLI and batch jobs; views get the same through :func:`wrap_views`."""
    try:
        yield
    except BaseException:
        rollback()
        raise
    commit()


def in_unit(function: F) -> F:
    """Decorate ``function`` so each call is one :func:`unit` of work."""
    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        with unit():
            return function(*args, **kwargs)
    return run  # type: ignore[return-value]


def wrap_views(app: Flask) -> None:
    """Make every registered view of ``app`` one unit of work (:func:`in_unit`):
    committed when the view returned a response, rolled back when it raised
    (an ``abort``, a service error it did not catch, a failed commit). The
    error net (:func:`idp.web.handle_unexpected_error`) runs outside the view
    and rolls back too, so a 5xx never commits. Call after the last
    blueprint is registered; static files are left alone."""
    for endpoint, view in list(app.view_functions.items()):
        if endpoint != "static" and not endpoint.endswith(".static"):
            app.view_functions[endpoint] = in_unit(view)
