"""One unit of work (idp.unit_of_work): services flush and never commit; the
outermost caller (a view, a command, here the test) commits or rolls back;
after-commit callbacks run only after a commit; failure audit events that
go through the deferred writer outlive a rollback."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator

import click
import pytest
from flask import Flask, request
from flask.cli import with_appcontext
from sqlalchemy import func, select

from idp import unit_of_work
from idp.accounts import links
from idp.accounts import notify as notify_module
from idp.accounts.models import Account, IdentityLink
from idp.accounts.service import create_account, find_by_username, set_phone_number
from idp.admin.service import release_identity
from idp.audit.models import AuditEvent
from idp.audit.service import record, record_deferred
from idp.cli.unit import in_units
from idp.extensions import db
from idp.runtime import current_runtime
from tests.conftest import make_settings
from tests.helpers import DEFAULT_PASSWORD


def _username() -> str:
    return f"uow{uuid.uuid4().hex[:10]}"


def _committed(username: str) -> bool:
    """Whether another connection sees the account ``username``."""
    with db.engine.connect() as other:
        return other.scalar(select(func.count()).select_from(Account)
                            .where(Account.username == username)) == 1


def _events(account_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.account_id == account_id))


def test_a_service_leaves_its_work_uncommitted(rt, commits):
    account = create_account(rt, _username(), DEFAULT_PASSWORD)
    assert account.id is not None and commits == []
    assert not _committed(account.username)
    unit_of_work.commit()
    assert len(commits) == 1 and _committed(account.username)


def test_account_legacy_link_and_audit_are_one_transaction(rt):
    username, legacy = _username(), secrets.token_hex(6)
    account = create_account(rt, username, DEFAULT_PASSWORD)
    links.link(rt, account, "legacy", "H", legacy)
    record("account.legacy_linked", account_id=account.id, issuer="H")
    account_id = account.id
    unit_of_work.rollback()
    assert find_by_username(username) is None
    assert links.find_account(rt, "legacy", "H", legacy) is None
    assert db.session.scalar(select(func.count()).select_from(IdentityLink)
                             .where(IdentityLink.account_id == account_id)) == 0
    assert _events(account_id) == 0

    account = create_account(rt, username, DEFAULT_PASSWORD)
    links.link(rt, account, "legacy", "H", legacy)
    record("account.legacy_linked", account_id=account.id, issuer="H")
    account_id = account.id
    unit_of_work.commit()
    db.session.expunge_all()
    assert links.find_account(rt, "legacy", "H", legacy).username == username
    assert _events(account_id) == 2  # account.created, account.legacy_linked


def test_after_commit_callbacks_run_only_after_a_commit(rt):
    ran: list[str] = []
    unit_of_work.after_commit(lambda: ran.append("rolled back"))
    create_account(rt, _username(), DEFAULT_PASSWORD)
    unit_of_work.rollback()
    unit_of_work.commit()
    assert ran == []

    unit_of_work.after_commit(lambda: ran.append("first"))
    unit_of_work.after_commit(lambda: 1 / 0)  # logged; the others still run
    unit_of_work.after_commit(lambda: ran.append("second"))
    account = create_account(rt, _username(), DEFAULT_PASSWORD)
    assert ran == []
    unit_of_work.commit()
    assert ran == ["first", "second"] and _committed(account.username)


def test_a_notice_goes_out_only_when_the_change_commits(rt, account, monkeypatch):
    """``release_identity`` tells the holder's phone after the caller's
    commit; a rolled-back release tells nobody."""
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(notify_module, "notify_phone",
                        lambda _rt, phone, template, _params=None: sent.append((phone, template)))
    phone = f"+86139{secrets.randbelow(10**8):08d}"
    set_phone_number(rt, account, phone, verified=True)
    unit_of_work.commit()

    release_identity(rt, account, "clerk", "test")
    unit_of_work.rollback()
    assert sent == [] and db.session.get(Account, account.id).review_reason is None

    release_identity(rt, account, "clerk", "test")
    assert sent == []
    unit_of_work.commit()
    assert sent == [(phone, "identity_released")]


@pytest.fixture(scope="module")
def app(tmp_path_factory, database_url) -> Iterator[Flask]:
    """An application of its own, whose application contexts commit
    nothing by themselves (unlike the shared fixtures'), with a view and a
    command that create an account and then may fail."""
    from idp import create_app

    app = create_app(make_settings(tmp_path_factory.mktemp("uow"), database_url, 9))

    def make_then_fail():
        rt = current_runtime()
        account = create_account(rt, request.args["username"], DEFAULT_PASSWORD)
        record_deferred(rt.audit, "test.refused", "failure", account_id=account.id)
        if request.args.get("fail"):
            raise RuntimeError("after the flush")
        return "made"

    app.add_url_rule("/test/make", "test_make", unit_of_work.in_unit(make_then_fail))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="module")
def commands() -> click.Group:
    """A group of one command, made units of work as the ``idp`` group makes
    its groups (idp.cli.group.IdpGroup.add_command)."""
    @click.group()
    def group() -> None:
        pass

    @group.command("make")
    @click.argument("username")
    @click.option("--fail", type=click.Choice(["error", "refusal"]))
    @with_appcontext
    def make(username: str, fail: str | None) -> None:
        create_account(current_runtime(), username, DEFAULT_PASSWORD)
        if fail == "error":
            raise RuntimeError("the disk is full")
        if fail == "refusal":
            raise click.ClickException("refused")
        click.echo("made")

    return in_units(group)


def test_a_view_that_raises_after_a_flush_changes_nothing_but_its_audit_arrives(app):
    username = _username()
    response = app.test_client().get("/test/make", query_string={"username": username,
                                                                 "fail": "1"})
    assert response.status_code == 500
    with app.app_context():
        assert not _committed(username)
        refused = db.session.scalars(select(AuditEvent).where(
            AuditEvent.event == "test.refused")).all()
        assert len(refused) == 1 and refused[0].outcome == "failure"
        assert _events(refused[0].account_id) == 1  # account.created is gone

    assert app.test_client().get("/test/make", query_string={"username": username}).text \
        == "made"
    with app.app_context():
        assert _committed(username)


@pytest.mark.parametrize("fail", ["error", "refusal"])
def test_a_failing_command_rolls_back_and_says_why(app, commands, fail):
    username = _username()
    result = app.test_cli_runner().invoke(commands, ["make", username, "--fail", fail])
    assert result.exit_code == 1
    assert ("RuntimeError: the disk is full (nothing was changed)" if fail == "error"
            else "refused") in result.output
    with app.app_context():
        assert not _committed(username)


def test_a_command_commits_when_it_ends(app, commands):
    username = _username()
    result = app.test_cli_runner().invoke(commands, ["make", username])
    assert (result.exit_code, result.output) == (0, "made\n")
    with app.app_context():
        assert _committed(username)


def test_a_test_reading_the_audit_table_sees_events_still_queued(rt, account, monkeypatch):
    """The suite's guard against racing the deferred writer
    (tests.helpers.audit_reads_wait_for_the_writer): with the writer's
    thread held back, the event is still only in the queue when the test
    reads, and the read finds it all the same."""
    monkeypatch.setattr(rt.audit._thread, "ensure_started", lambda: None)
    record_deferred(rt.audit, "test.queued", "failure", account_id=account.id)
    assert db.session.scalars(select(AuditEvent.event).where(
        AuditEvent.account_id == account.id, AuditEvent.event == "test.queued")).all() \
        == ["test.queued"]
