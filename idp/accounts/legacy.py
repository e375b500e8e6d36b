"""Legacy passwords at first login (docs/migration.md, "Passwords after
migration").

A migrated account has no password of the provider's own until its first
login: it holds the hashes its departments stored, each with its scheme
(:class:`~idp.accounts.models.LegacyCredential`). Any of them verifies the
password typed; on success the password is re-hashed with argon2id and
every legacy credential of the account is deleted in the same transaction,
so only the password used works from then on. A password that fails
today's policy still logs in once, and must be changed before any client
receives tokens (case M-PW-3).

The hashes are verified by :mod:`migration.hashes`, which imports nothing
of the provider.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError

from idp.accounts.models import Account, LegacyCredential
from idp.audit.service import record
from idp.extensions import db
from idp.runtime import Runtime
from migration.hashes import SchemeError, scheme_for

log = logging.getLogger(__name__)

#: Longest password tried against legacy hashes, characters: some formats'
#: work grows with it (SHA-512-crypt), and no legacy form took more.
MAX_PASSWORD = 64
#: Most legacy hashes of one account tried per login (oldest first), and
#: most seconds spent trying them: the work of one attempt must not grow
#: with the rows of a person.
MAX_TRIED = 8
BUDGET = 2.0


@dataclass(frozen=True)
class LegacyMatch:
    """The legacy credential a password verified against.

    :ivar department: its department's code.
    :ivar encoding: the encoding the password matched in (``utf-8``,
        ``gbk``, ``utf-16le``; case M-PW-5).
    """

    department: str
    encoding: str


def has_legacy_credentials(account_id: int) -> bool:
    """Whether the account ``account_id`` still holds a legacy hash (it has
    not logged in since it was migrated)."""
    return db.session.scalar(select(LegacyCredential.id).where(
        LegacyCredential.account_id == account_id).limit(1)) is not None


def count_legacy_credentials(account_id: int) -> int:
    """How many legacy hashes the account ``account_id`` still holds."""
    return db.session.scalar(select(func.count()).select_from(LegacyCredential).where(
        LegacyCredential.account_id == account_id))


def forget_legacy_credentials(account: Account) -> None:
    """Delete every legacy hash of the account (flushed by the caller's
    unit): a password of the provider's own was just set (a reset by SMS
    code, a change), so no old password may work beside it."""
    db.session.execute(delete(LegacyCredential).where(
        LegacyCredential.account_id == account.id))


def verify_legacy(rt: Runtime, account: Account, password: str) -> LegacyMatch | None:
    """Check ``password`` against each legacy hash of ``account``, exactly as
    typed (never normalised: case M-PW-4).

    A credential whose scheme no longer parses, whose pepper's environment
    variable is unset, or whose stored value is damaged is skipped and
    logged, never an error of the login.

    :returns: the credential's department and the encoding that matched,
        or None.
    """
    if len(password) > MAX_PASSWORD:
        return None
    credentials = db.session.scalars(select(LegacyCredential).where(
        LegacyCredential.account_id == account.id).order_by(LegacyCredential.id)
        .limit(MAX_TRIED))
    started = time.monotonic()
    for credential in credentials:
        if time.monotonic() - started > BUDGET:
            log.warning("legacy credentials of account %s: stopped after %.1f s", account.id,
                        BUDGET)
            break
        try:
            scheme = scheme_for(credential.scheme)
            secret = json.loads(rt.pii.decrypt(f"legacy_credential:{credential.department}",
                                               credential.secret_enc))
            pepper = os.environ.get(credential.pepper_env) if credential.pepper_env else None
            if credential.pepper_env and not pepper:
                raise SchemeError(f"the environment variable {credential.pepper_env} "
                                  "is not set")
            with rt.hasher.slot():
                encoding = scheme.verify(password, secret["hash"],
                                         {"salt": secret.get("salt"),
                                          "username": secret.get("username"),
                                          "pepper": pepper})
        except Exception as exc:  # noqa: BLE001 - a department's data never fails a login
            log.warning("legacy credential %s of department %s cannot be verified: %s",
                        credential.id, credential.department, type(exc).__name__)
            continue
        if encoding is not None:
            return LegacyMatch(credential.department, encoding)
    return None


def upgrade(rt: Runtime, account: Account, password: str, match: LegacyMatch,
            ip: str | None = None) -> bool:
    """Make ``password`` (just verified by :func:`verify_legacy`) the
    account's argon2id password and delete every legacy hash of the
    account, in a savepoint of the login's transaction. A password that
    fails today's policy sets ``password_change_required``. Audited as
    ``password.legacy_upgraded`` with the department and the encoding.

    :returns: whether the upgrade was written; when the write fails, the
        savepoint is rolled back, the legacy hashes stay, and the login
        goes on (the next login tries again).
    """
    from idp.accounts.service import AccountError, check_password_policy

    new_hash = rt.hasher.hash(password)
    try:
        check_password_policy(rt, password, account=account)
        weak = False
    except AccountError:
        weak = True
    try:
        with db.session.begin_nested():
            account.password_hash = new_hash
            account.password_change_required = weak
            db.session.execute(delete(LegacyCredential).where(
                LegacyCredential.account_id == account.id))
            db.session.flush()
    except SQLAlchemyError:
        log.exception("the legacy password of account %s could not be upgraded", account.id)
        db.session.refresh(account)
        return False
    record("password.legacy_upgraded", account_id=account.id, ip=ip,
           department=match.department, encoding=match.encoding, change_required=weak)
    return True

