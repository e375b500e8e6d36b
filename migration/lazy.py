"""Lazy migration: a user of a department that cannot export is folded at
their first login, when the department's login API confirms the login
name and password (connectors.legacy_login; docs/migration.md, "Lazy
migration"). The row the department describes goes through the same fold
as an exported one, so matching, merging, review and tombstones follow the
same rules; the password it confirmed becomes the account's argon2id
password, as a legacy hash's would.
"""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from sqlalchemy import select

from connectors.legacy_login import LegacyLoginUnavailableError, LegacyProfile
from idp.accounts import legacy, links
from idp.accounts.models import Account
from idp.audit.service import record, record_deferred
from idp.extensions import db
from idp.runtime import Runtime
from migration.fold import Counts, Department, Folder
from migration.models import MigrationBatch
from migration.review import find_record
from migration.rows import LegacyRow, build_row, utc

log = logging.getLogger(__name__)

#: The ``mapping`` of the batch a department's lazy logins are recorded in.
LAZY = "(lazy login)"
#: The zone of a profile's timestamps without an offset.
ZONE = ZoneInfo("Asia/Shanghai")
#: The precedence of a lazily folded row's attributes in merges.
TRUST = 50


def _batch(department: str) -> int:
    batch_id = db.session.scalar(select(MigrationBatch.id).where(
        MigrationBatch.department == department, MigrationBatch.mapping == LAZY)
        .order_by(MigrationBatch.id).limit(1))
    if batch_id is None:
        batch = MigrationBatch(department=department, mapping=LAZY, source=LAZY, state="lazy")
        db.session.add(batch)
        db.session.flush()
        batch_id = batch.id
    return batch_id


def _row(profile: LegacyProfile, identifier: str) -> LegacyRow:
    return build_row({"legacy_id": profile.legacy_id, "username": profile.username or identifier,
                      "name": profile.name, "resident_id": profile.resident_id,
                      "phone": profile.phone, "email": profile.email, "status": profile.status,
                      "created_at": profile.created_at,
                      "last_login_at": profile.last_login_at},
                     status=profile.status, created_at=utc(profile.created_at, ZONE),
                     last_login_at=utc(profile.last_login_at, ZONE))


def is_departments(rt: Runtime, account: Account, department: str) -> bool:
    """Whether ``account`` holds a legacy id of ``department`` (its own
    user, whom the department need not be asked about)."""
    return bool(links.links_of(rt, account, "legacy", department))


def first_login(rt: Runtime, department: str, identifier: str, password: str,
                ip: str | None = None) -> Account | None:
    """Ask ``department``'s login API about ``identifier`` and ``password``;
    when it confirms them, fold the user it describes and return their
    account, whose argon2id password ``password`` becomes (flushed, not
    committed: the login commits).

    :returns: None when the department is not configured, says no, does
        not answer as the protocol says, or when the fold does not give a
        live account that may take the password: a row held for review,
        rejected, deleted or disabled, or an account that has a password of
        its own already (the department's password never replaces it).
    """
    check = rt.legacy_logins.get(department)
    if check is None:
        return None
    try:
        profile = check.check(identifier, password)
    except LegacyLoginUnavailableError as exc:
        log.warning("legacy login of department %s unavailable: %s", department, exc)
        record_deferred(rt.audit, "migration.lazy_login", "failure", ip=ip,
                        department=department, reason="unavailable")
        return None
    if profile is None:
        return None
    row = _row(profile, identifier)
    try:
        existed = find_record(rt, department, row.legacy_id) is not None
    except Exception:  # noqa: BLE001 - a malformed legacy id: not folded below either
        existed = True
    folder = Folder(rt, Department(department, TRUST, {}, None), _batch(department), Counts())
    # Everything the fold writes stays only when this login succeeds: a
    # refused one leaves no trace but its audit event.
    savepoint = db.session.begin_nested()
    try:
        folder.fold_chunk([row])
    except Exception:  # noqa: BLE001 - a department's data never fails a login with 500
        savepoint.rollback()
        log.exception("the lazy login row of department %s could not be folded", department)
        record_deferred(rt.audit, "migration.lazy_login", "failure", ip=ip,
                        department=department, reason="fold_failed")
        return None
    try:
        account = links.find_account(rt, "legacy", department, row.legacy_id)
    except links.LinkError:
        account = None
    folded = find_record(rt, department, row.legacy_id) if account is not None else None
    # Only an account this very login made takes the password the
    # department confirmed: one made from other data (another department's
    # export, this department's own export, an own registration) is
    # linked, never opened by a department's word.
    made_here = not existed and folded is not None and folded.outcome == "imported"
    if account is None or not made_here or account.password_hash is not None \
            or not account.is_active:
        reason = ("not_folded" if account is None else "has_password"
                  if account.password_hash is not None else "inactive"
                  if not account.is_active else "other_account")
        account_id = account.id if account else None
        savepoint.rollback()
        record_deferred(rt.audit, "migration.lazy_login", "failure", account_id=account_id,
                        ip=ip, department=department, reason=reason)
        return None
    savepoint.commit()
    db.session.refresh(account)
    legacy.upgrade(rt, account, password, legacy.LegacyMatch(department, "lazy_login"), ip)
    record("migration.lazy_login", account_id=account.id, ip=ip, department=department)
    return account
