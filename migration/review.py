"""An operator's review of the fold: conflicts resolved by merging or
keeping apart, a wrong merge undone, a legacy id looked up
(``idp migrate conflicts|resolve|undo-merge|links``).

Each function flushes and never commits: the command is the unit of work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import delete, select, update

from idp.accounts import links
from idp.accounts.models import Account, IdentityLink, LegacyCredential
from idp.accounts.snapshots import mark_changed
from idp.audit.service import record as audit
from idp.extensions import db
from idp.runtime import Runtime
from idp.security import random_token
from idp.timeutil import utcnow
from migration.fold import (
    PENDING,
    Counts,
    Department,
    Folder,
    fold_one,
    folded_username,
    generated_username,
)
from migration.models import AttributeProvenance, LegacyRecord, MigrationConflict
from migration.normalise import Value
from migration.rows import AUDITED, LegacyRow, build_row


class ReviewError(ValueError):
    """The review step cannot be taken; the message says why."""


@dataclass(frozen=True)
class RecordView:
    """A legacy record, decrypted, as the commands show it.

    :ivar account: the username of its account, or None.
    :ivar created_at: the legacy creation time, naive UTC, or None.
    """

    id: int
    department: str
    legacy_id: str
    outcome: str
    reason: str | None
    account: str | None
    subject: str | None
    batch_id: int
    created_at: datetime | None
    last_login_at: datetime | None


def view(rt: Runtime, record: LegacyRecord) -> RecordView:
    """The record as the commands show it."""
    account = db.session.get(Account, record.account_id) if record.account_id else None
    return RecordView(record.id, record.department,
                      rt.pii.decrypt(f"link:legacy:{record.department}", record.legacy_id_enc),
                      record.outcome, record.reason, account.username if account else None,
                      account.subject if account else None, record.batch_id,
                      record.created_at, record.last_login_at)


def find_record(rt: Runtime, department: str, legacy_id: str) -> LegacyRecord | None:
    """The record of ``legacy_id`` of ``department``, or None.

    :raises ReviewError: the department code or legacy id is malformed.
    """
    try:
        links.find_link(rt, "legacy", department, legacy_id)
    except links.LinkError as exc:
        raise ReviewError(str(exc.message)) from None
    index = rt.pii.blind_index(f"link:legacy:{department}", legacy_id)
    return db.session.scalar(select(LegacyRecord).where(
        LegacyRecord.department == department, LegacyRecord.legacy_id_index == index))


def _raw(rt: Runtime, record: LegacyRecord) -> dict:
    return json.loads(rt.pii.decrypt(f"legacy_row:{record.department}", record.raw_enc))


def _row(raw: dict, record: LegacyRecord, legacy_id: str) -> LegacyRow:
    pending = raw.get(PENDING, {})
    values = {key: value for key, value in raw.items() if key in AUDITED}
    return build_row({**values, "legacy_id": legacy_id, "password": pending.get("password"),
                      "salt": pending.get("salt")},
                     scheme=pending.get("scheme", ""), status=pending.get("status", "active"),
                     created_at=record.created_at, last_login_at=record.last_login_at)


def _folder(rt: Runtime, record: LegacyRecord, raw: dict) -> Folder:
    pending = raw.get(PENDING, {})
    department = Department(record.department, pending.get("trust", 50),
                            pending.get("schemes", {}), pending.get("pepper_env"))
    return Folder(rt, department, record.batch_id, Counts())


def list_conflicts(rt: Runtime, *, everything: bool = False) -> list[dict]:
    """The conflicts, oldest first: open ones, or ``everything``.

    :returns: objects with ``id``, ``kind``, ``state``, ``department``,
        ``legacy_id``, ``account`` (the username the row would join, or
        None), ``record_account`` (the row's own account, for a proposal),
        ``created_at`` (ISO 8601 UTC).
    """
    query = select(MigrationConflict).order_by(MigrationConflict.id)
    if not everything:
        query = query.where(MigrationConflict.state == "open")
    out = []
    for conflict in db.session.scalars(query):
        record = db.session.get(LegacyRecord, conflict.record_id)
        shown = view(rt, record)
        other = db.session.get(Account, conflict.account_id) if conflict.account_id else None
        out.append({"id": conflict.id, "kind": conflict.kind, "state": conflict.state,
                    "department": record.department, "legacy_id": shown.legacy_id,
                    "account": other.username if other else None,
                    "record_account": shown.account,
                    "created_at": conflict.created_at.isoformat() + "Z",
                    "resolved_by": conflict.resolved_by})
    return out


def resolve(rt: Runtime, conflict_id: int, *, merge: bool, operator: str) -> str:
    """Resolve conflict ``conflict_id``.

    A held row (``name_mismatch``, ``username_case``) is merged into the
    person it collided with, or kept apart as a new account that takes
    neither the ID number nor the login name another person holds. A
    proposal (``phone_name``, ``shared_phone``) merges the row's account
    into the other, or is closed.

    :returns: what was done, in words.
    :raises ReviewError: no such open conflict, nothing to merge with, or
        an account that was used since the fold (merge it by hand).
    """
    conflict = db.session.get(MigrationConflict, conflict_id)
    if conflict is None or conflict.state != "open":
        raise ReviewError(f"there is no open conflict {conflict_id}")
    record = db.session.get(LegacyRecord, conflict.record_id)
    raw = _raw(rt, record)
    legacy_id = view(rt, record).legacy_id
    if record.outcome == "conflict":
        done = _resolve_held(rt, conflict, record, raw, legacy_id, merge)
    elif merge:
        done = _merge_accounts(rt, conflict, record)
    else:
        done = "kept apart"
    # The fold wrote with bulk statements: what the session holds is stale.
    db.session.expire(record)
    conflict.state = "merged" if merge else "kept_apart"
    conflict.resolved_at = utcnow()
    conflict.resolved_by = operator
    audit("migration.conflict_resolved", account_id=record.account_id, conflict=conflict.id,
          kind=conflict.kind, decision=conflict.state, operator=operator)
    db.session.flush()
    return done


def _resolve_held(rt: Runtime, conflict: MigrationConflict, record: LegacyRecord, raw: dict,
                  legacy_id: str, merge: bool) -> str:
    row = _row(raw, record, legacy_id)
    folder = _folder(rt, record, raw)
    if merge:
        target = conflict.account_id or _collided_account(record)
        if target is None:
            raise ReviewError("the row it collided with has no account: keep it apart")
        person = fold_one(folder, row, record, merge_into=target)
        done = f"merged into {person.username}"
    else:
        person = fold_one(folder, row, record, merge_into=None, claims=False)
        done = f"kept apart as {person.username}"
    db.session.execute(update(LegacyRecord).where(LegacyRecord.id == record.id).values(
        reason=f"review_{conflict.kind}"))
    return done


def _collided_account(record: LegacyRecord) -> int | None:
    return db.session.scalar(select(LegacyRecord.account_id).where(
        LegacyRecord.department == record.department,
        LegacyRecord.username_index == record.username_index,
        LegacyRecord.id != record.id, LegacyRecord.account_id.is_not(None)).limit(1))


def _merge_accounts(rt: Runtime, conflict: MigrationConflict, record: LegacyRecord) -> str:
    source = db.session.get(Account, record.account_id)
    target = db.session.get(Account, conflict.account_id)
    if source is None or target is None or source.id == target.id:
        raise ReviewError("the accounts of this conflict are gone or already one")
    if source.password_hash is not None:
        raise ReviewError(f"{source.username} has logged in since the fold: merging it "
                          "would drop its password; merge it by hand")
    # Everything of the source goes with it, the other proposals about it
    # too (deleting the account would cascade them away).
    for model in (IdentityLink, LegacyCredential, LegacyRecord, MigrationConflict):
        db.session.execute(update(model).where(model.account_id == source.id)
                           .values(account_id=target.id))
    # The target's own attributes stay; the source's provenance goes with it.
    db.session.execute(delete(AttributeProvenance).where(
        AttributeProvenance.account_id == source.id))
    for attribute in ("name", "email"):
        if getattr(target, attribute) is None:
            setattr(target, attribute, getattr(source, attribute))
    db.session.delete(source)
    db.session.flush()
    mark_changed(db.session, target.id)
    return f"merged {source.username} into {target.username}"


def undo_merge(rt: Runtime, account: Account, operator: str) -> list[Account]:
    """Split the rows merged into ``account`` back out: each becomes an
    account of its own with its legacy link, its credential (while the
    account has not logged in since) and its login name's alias; the ID
    number stays with ``account``. Audited as ``migration.merge_undone``.

    :returns: the new accounts.
    :raises ReviewError: no row was merged into the account.
    """
    records = db.session.scalars(select(LegacyRecord).where(
        LegacyRecord.account_id == account.id, LegacyRecord.outcome == "merged")
        .order_by(LegacyRecord.id)).all()
    if not records:
        raise ReviewError(f"no legacy row was merged into {account.username}")
    made = []
    for record in records:
        raw = _raw(rt, record)
        legacy_id = view(rt, record).legacy_id
        row = replace(_row(raw, record, legacy_id), resident_id=Value(None), password=None)
        split = Account(subject=random_token(16), username=generated_username(record.department),
                        name=row.name.value, status=account.status)
        db.session.add(split)
        db.session.flush()
        db.session.execute(update(IdentityLink).where(
            IdentityLink.account_id == account.id, IdentityLink.kind == "legacy",
            IdentityLink.issuer == record.department,
            IdentityLink.value_index == record.legacy_id_index).values(account_id=split.id))
        link_id = db.session.scalar(select(IdentityLink.id).where(
            IdentityLink.account_id == split.id, IdentityLink.kind == "legacy"))
        db.session.execute(update(LegacyCredential).where(LegacyCredential.link_id == link_id)
                           .values(account_id=split.id))
        folded = folded_username(row)
        if folded is not None:
            alias = links.find_link(rt, "alias", record.department, folded)
            if alias is not None and alias.account_id == account.id:
                alias.account_id = split.id
        db.session.execute(delete(AttributeProvenance).where(
            AttributeProvenance.record_id == record.id))
        record.account_id, record.outcome, record.reason = split.id, "imported", "merge_undone"
        made.append(split)
    audit("migration.merge_undone", account_id=account.id, operator=operator,
          accounts=[item.subject for item in made])
    db.session.flush()
    return made


def legacy_links(rt: Runtime, account: Account) -> list[dict]:
    """The account's legacy links with the legacy system's own times
    (``idp users show``): objects with ``department``, ``legacy_id``,
    ``created_at`` and ``last_login_at`` (ISO 8601 UTC, or None when the
    legacy system did not know), by department and age."""
    out = []
    for item in links.links_of(rt, account, "legacy"):
        record = find_record(rt, item.issuer, item.value)
        created = record.created_at if record is not None else None
        last = record.last_login_at if record is not None else None
        out.append({"department": item.issuer, "legacy_id": item.value,
                    "created_at": created.isoformat() + "Z" if created else None,
                    "last_login_at": last.isoformat() + "Z" if last else None})
    return out
