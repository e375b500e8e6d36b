"""``idp users``: accounts (create, show, suspend, verify in person, review flags)."""

from __future__ import annotations

import getpass
import json
import sys

import click
from flask.cli import with_appcontext


@click.group()
def users() -> None:
    """Manage accounts."""


#: Longest password line read from standard input (the account policy
#: allows 1024 characters; a longer line is refused, not cut).
MAX_PASSWORD_LINE = 1024


def _stdin_is_terminal() -> bool:
    """Whether standard input is a terminal (someone can be asked)."""
    return sys.stdin.isatty()


def _refuse_password_option(_ctx: click.Context, _param: click.Parameter,
                            value: str | None) -> None:
    if value is not None:
        raise click.UsageError(
            "--password is not accepted: a password on the command line is seen by every "
            "user of the machine (ps, /proc) and kept in shell history. Type it at the "
            "prompt, or pipe it in with --password-stdin.")


def _read_password(from_stdin: bool) -> str:
    """The new account's password: one line of standard input with
    ``--password-stdin`` (like ``docker login``), else asked twice at the
    terminal without echo.

    :raises click.UsageError: no ``--password-stdin`` and no terminal to ask at.
    :raises click.ClickException: an empty or too long line on standard input.
    """
    if from_stdin:
        line = sys.stdin.readline(MAX_PASSWORD_LINE + 2)
        password = line.removesuffix("\n").removesuffix("\r")
        if len(password) > MAX_PASSWORD_LINE:
            raise click.ClickException(
                f"--password-stdin: the password is longer than {MAX_PASSWORD_LINE} characters")
        if not password:
            raise click.ClickException("--password-stdin: standard input gave no password "
                                       "(one line, ended by a newline or the end of input)")
        return password
    if not _stdin_is_terminal():
        raise click.UsageError("no terminal to ask for the password: pipe it in with "
                               "--password-stdin")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users.command("create")
@click.option("--username", required=True)
@click.option("--password-stdin", "password_stdin", is_flag=True,
              help="Read the password from the first line of standard input instead of "
                   "asking for it at the terminal.")
@click.option("--password", hidden=True, expose_value=False, is_eager=True,
              callback=_refuse_password_option)
@click.option("--name", default=None, help="Display name.")
@click.option("--email", default=None)
@click.option("--admin", is_flag=True,
              help="An operator: must set up an authenticator (TOTP) at first sign-in.")
@with_appcontext
def users_create(username: str, password_stdin: bool, name: str | None, email: str | None,
                 admin: bool) -> None:
    """Create an account. The password is asked at the terminal (twice,
    not shown), or read from standard input with --password-stdin; never
    given on the command line."""
    from idp.accounts.service import AccountError, create_account
    from idp.runtime import current_runtime

    password = _read_password(password_stdin)
    try:
        account = create_account(current_runtime(), username, password, name=name, email=email,
                                 admin=admin)
    except AccountError as exc:
        raise click.ClickException("\n".join(f"{field}: {message}"
                                             for field, message in exc.errors)) from None
    role = " (administrator: TOTP required)" if admin else ""
    click.echo(f"created account {account.username} (sub {account.subject}){role}")


def find_account(identifier: str):
    """The account named by a username, resident ID, card or verified phone
    number, a subject (``sub``), or a department's legacy login name kept
    as an alias (when one account holds it in all departments).

    :raises click.ClickException: no account, or an alias several hold.
    """
    from sqlalchemy import select

    from idp.accounts.models import Account, IdentityLink
    from idp.accounts.service import find_for_login, normalize_username
    from idp.extensions import db
    from idp.runtime import current_runtime

    rt = current_runtime()
    account = (find_for_login(rt, identifier)
               or db.session.scalar(select(Account).where(Account.subject == identifier)))
    if account is None:
        departments = db.session.scalars(select(IdentityLink.issuer).where(
            IdentityLink.kind == "alias").distinct()).all()
        found = {found.id: found for found in (
            find_for_login(rt, normalize_username(identifier), department)
            for department in departments) if found is not None}
        if len(found) > 1:
            raise click.ClickException(f"{identifier!r} is a login name of several people "
                                       "in different departments: name the account by "
                                       "its username or sub")
        account = next(iter(found.values()), None)
    if account is None:
        raise click.ClickException(f"no account is named {identifier!r}")
    return account


_ACCOUNT_ARG = click.argument("identifier", metavar="ACCOUNT")
_REASON = click.option("--reason", required=True, help="Why (kept in the audit trail).")
_OPERATOR = click.option("--operator", default=getpass.getuser, show_default="login name",
                         help="Who acts (kept in the audit trail).")


@users.command("show")
@_ACCOUNT_ARG
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def users_show(identifier: str, as_json: bool) -> None:
    """Show an account: status, review flag, assurance level, masked
    identifiers, entities (ended ones too), evidence."""
    from connectors.identifiers import mask_card_number, mask_phone, mask_resident_id
    from idp.accounts import service as accounts
    from idp.accounts.entities import representations
    from idp.accounts.legacy import count_legacy_credentials
    from idp.accounts.verification import summary
    from idp.runtime import current_runtime
    from migration.review import legacy_links

    rt = current_runtime()
    account = find_account(identifier)
    state = summary(rt, account)
    phone, number, card = (accounts.phone_number(rt, account),
                           accounts.resident_id(rt, account), accounts.card_number(rt, account))
    info = {
        "username": account.username, "public_sub": account.subject, "status": account.status,
        "admin": account.is_admin, "reverification_required": account.reverification_required,
        "review": account.review_reason,
        "review_flagged_at": (account.review_flagged_at.isoformat()
                              if account.review_flagged_at else None),
        "level": state.level, "assurance_level": state.acr,
        "phone": mask_phone(phone) if phone else None,
        "phone_verified": account.phone_number_verified,
        "resident_id": mask_resident_id(number) if number else None,
        "card_number": mask_card_number(card) if card else None,
        "entities": [{"uscc": r.entity.uscc, "name": r.entity.name, "role": r.agent.role,
                      "level": r.level, "active": r.active,
                      "ended_at": r.agent.ended_at.isoformat() if r.agent.ended_at else None,
                      "ended_reason": r.agent.ended_reason}
                     for r in representations(account)],
        "evidence": [{"method": e.method, "result": e.result, "level": e.level,
                      "reference": e.reference, "verified_at": e.verified_at.isoformat(),
                      "expires_at": e.expires_at.isoformat() if e.expires_at else None,
                      "counts": e.id in state.live, "revoked_reason": e.revoked_reason}
                     for e in state.evidence],
        "legacy_links": legacy_links(rt, account),
        "legacy_credentials": count_legacy_credentials(account.id),
    }
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False))
        return
    for key, value in info.items():
        if key not in ("evidence", "entities", "legacy_links"):
            click.echo(f"{key}: {'-' if value is None else value}")
    for r in info["entities"]:
        ended = f", ended {r['ended_at']}: {r['ended_reason']}" if r["ended_at"] else ""
        click.echo(f"entity: {r['uscc']} {r['name']} ({r['role']}, level {r['level']}{ended})")
    for link in info["legacy_links"]:
        click.echo(f"legacy link: {link['department']} {link['legacy_id']} (created "
                   f"{link['created_at'] or '-'}, last login {link['last_login_at'] or '-'})")
    for e in info["evidence"]:
        click.echo(f"evidence: {e['verified_at']} {e['method']} {e['result']} "
                   f"{'counts' if e['counts'] else 'does not count'} {e['reference']}")


@users.command("suspend")
@_ACCOUNT_ARG
@_REASON
@_OPERATOR
@with_appcontext
def users_suspend(identifier: str, reason: str, operator: str) -> None:
    """Suspend an account: no sign-in, its tokens stop working at once."""
    from idp.admin.service import suspend
    from idp.runtime import current_runtime

    account = find_account(identifier)
    revoked = suspend(current_runtime(), account, operator, reason)
    click.echo(f"suspended {account.username}; {revoked} grants revoked")


@users.command("logout")
@_ACCOUNT_ARG
@_OPERATOR
@click.option("--revoke-grants", is_flag=True,
              help="Also revoke the relying parties' tokens (refresh tokens included).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@with_appcontext
def users_logout(identifier: str, operator: str, revoke_grants: bool, as_json: bool) -> None:
    """End every session of an account: its browsers are signed out and each
    portal it used is told (single logout)."""
    from idp.admin.service import logout_everywhere
    from idp.runtime import current_runtime

    rt = current_runtime()
    account = find_account(identifier)
    # The portals' notices are queued: the running provider's workers send
    # them (signed as the provider, with its settings), not this command.
    ended = logout_everywhere(rt, account, operator, revoke_grants=revoke_grants)
    result = {"account": account.username, "sessions_ended": ended.ended,
              "grants_revoked": ended.grants_revoked}
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"{account.username}: {ended.ended} sessions ended, "
                   f"{ended.grants_revoked} grants revoked; the running provider tells "
                   "their portals")


@users.command("reinstate")
@_ACCOUNT_ARG
@_OPERATOR
@with_appcontext
def users_reinstate(identifier: str, operator: str) -> None:
    """Lift a suspension."""
    from idp.admin.service import reinstate
    from idp.runtime import current_runtime

    account = find_account(identifier)
    reinstate(current_runtime(), account, operator)
    click.echo(f"reinstated {account.username}")


@users.command("reverify")
@_ACCOUNT_ARG
@_REASON
@_OPERATOR
@with_appcontext
def users_reverify(identifier: str, reason: str, operator: str) -> None:
    """Demand a new identity verification: no tokens until the population
    registry matches again (the user can still sign in to verify)."""
    from idp.admin.service import require_reverification
    from idp.runtime import current_runtime

    account = find_account(identifier)
    revoked = require_reverification(current_runtime(), account, operator, reason)
    click.echo(f"{account.username} must verify again; {revoked} grants revoked")


@users.command("verify-in-person")
@_ACCOUNT_ARG
@click.option("--name", required=True, help="Name as on the ID card seen at the counter.")
@click.option("--id-number", required=True, help="Resident ID number on the card.")
@click.option("--reference", required=True, help="The counter's ticket or case number.")
@click.option("--take-over", is_flag=True,
              help="If another account holds this ID number (someone verified as this "
                   "person online), take it off that account first.")
@_OPERATOR
@with_appcontext
def users_verify_in_person(identifier: str, name: str, id_number: str, reference: str,
                           take_over: bool, operator: str) -> None:
    """Record an in-person verification at a counter (level 4); the
    population registry is checked too. The person seen at the counter wins
    over an online verification of the same number with --take-over."""
    from idp import unit_of_work
    from idp.accounts.identifiers import IdentifierError
    from idp.accounts.service import AccountError
    from idp.accounts.verification import (
        VerificationFailedError,
        VerificationUnavailableError,
        verify_in_person,
    )
    from idp.admin.service import take_over_in_person
    from idp.runtime import current_runtime

    account = find_account(identifier)
    rt = current_runtime()
    if rt.registries.population is None:
        raise click.ClickException("no gateway is configured (gateway.url): the population "
                                   "registry cannot be asked; set IDP_GATEWAY__URL, "
                                   "IDP_GATEWAY__ACCESS_KEY and IDP_GATEWAY__SECRET")
    try:
        check = take_over_in_person if take_over else verify_in_person
        check(rt, account, name, id_number, reference, operator)
    except IdentifierError as exc:
        raise click.ClickException(f"--id-number: {exc.message}") from None
    except AccountError as exc:
        raise click.ClickException(f"{exc.field}: {exc.message}") from None
    except VerificationUnavailableError:
        raise click.ClickException("the verification service is unavailable; try again "
                                   "later") from None
    except VerificationFailedError as exc:
        unit_of_work.commit()  # the failed match is evidence, kept
        raise click.ClickException(f"not verified ({exc.code}): {exc.message}") from None
    click.echo(f"{account.username} verified in person (level 4)")


@users.command("reset-second-factor")
@_ACCOUNT_ARG
@_REASON
@_OPERATOR
@with_appcontext
def users_reset_second_factor(identifier: str, reason: str, operator: str) -> None:
    """Remove an account's authenticator app and recovery codes, for a person
    checked in person at a service counter who lost both, or whose account
    has an authenticator that is not theirs (docs/recovery.md). Every
    session ends, every grant is revoked and the verified phone is told; an
    operator sets up a new authenticator at the next sign-in."""
    from idp.admin.service import NoSecondFactorError, reset_second_factor
    from idp.runtime import current_runtime

    if not reason.strip():
        raise click.ClickException("--reason must say why (it is kept in the audit trail)")
    account = find_account(identifier)
    try:
        revoked = reset_second_factor(current_runtime(), account, operator, reason.strip())
    except NoSecondFactorError:
        raise click.ClickException(f"{account.username} has no authenticator app or "
                                   "recovery codes: nothing was changed") from None
    click.echo(f"removed the authenticator app and recovery codes of {account.username}; "
               f"every session ended; {revoked} grants revoked")


@users.command("list")
@click.option("--review", is_flag=True, required=True,
              help="Accounts flagged for an operator's review (e.g. identity_released: an "
                   "ID number they had verified by name and number only was proven by "
                   "someone else's card, face, carrier or counter visit).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10000))
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def users_list(review: bool, limit: int, as_json: bool) -> None:
    """List accounts flagged for review, oldest flag first."""
    from idp.admin.service import flagged_for_review

    rows = [{"username": a.username, "public_sub": a.subject, "status": a.status,
             "review": a.review_reason, "review_flagged_at": a.review_flagged_at.isoformat()}
            for a in flagged_for_review(limit)]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        click.echo(f"{row['username']}\t{row['review']}\t{row['review_flagged_at']}")
    if not rows:
        click.echo("no account is flagged for review", err=True)


@users.command("clear-review")
@_ACCOUNT_ARG
@_REASON
@_OPERATOR
@with_appcontext
def users_clear_review(identifier: str, reason: str, operator: str) -> None:
    """Clear an account's review flag after looking at it (audited)."""
    from idp.admin.service import NotFlaggedError, clear_review
    from idp.runtime import current_runtime

    account = find_account(identifier)
    try:
        flagged = clear_review(current_runtime(), account, operator, reason)
    except NotFlaggedError:
        raise click.ClickException(f"{account.username} is not flagged for review") from None
    click.echo(f"cleared the review flag of {account.username} ({flagged})")
