"""Read-only snapshots of accounts for the hot protocol paths (userinfo,
introspection), cached per process and dropped in every process when the
account changes.

Each account has a *version* in the store (a random value under
``accounts:version:<id>``), rewritten after every committed transaction
that changed the account's row or its verification evidence. A request
reads the version (in the same store round trip as the token's revocation
markers, :meth:`AccountCache.version_key`) and uses the process's snapshot
only when it was loaded under that version; otherwise it loads the account
again. Changes are found by the session's flush events, so no caller has to
remember to announce one; the one bulk statement that changes evidence
(:func:`idp.accounts.verification.revoke_evidence`) calls
:func:`mark_changed` itself.

Revocation does not depend on this cache: suspension, re-verification,
logout and consent withdrawal revoke the account's grants, whose store
markers stop the access tokens at once (``idp.authorizations.service``).
The snapshot carries what the claims are made of and ``may_receive_tokens``
as a second line. A snapshot lives at most :data:`LOCAL_TTL` seconds in a
process, which bounds how long a change whose version could not be written
(the store was down just after the commit) stays unseen.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from flask import current_app, has_app_context
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from idp.accounts.models import Account, VerificationEvidence
from idp.extensions import db
from idp.security import random_token
from idp.store import Store, StoreError

log = logging.getLogger(__name__)

#: Store key prefix of an account's version.
VERSION_KEY = "accounts:version:"
#: Lifetime of a version entry, seconds: when it lapses the processes reload
#: the account once, which is harmless.
VERSION_TTL = 90 * 24 * 3600
#: Longest time a snapshot is used without reading the database, seconds.
LOCAL_TTL = 30.0
#: Most snapshots a process keeps; past it the cache starts afresh.
MAX_ENTRIES = 50_000
#: ``Session.info`` key of the ids of accounts the transaction changed.
_CHANGED = "idp.accounts.changed"


@dataclass(frozen=True)
class EvidenceSnapshot:
    """The fields of a :class:`VerificationEvidence` row that assurance reads."""

    id: int
    method: str
    result: str
    level: int
    reference: str
    verified_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class AccountSnapshot:
    """An account as the protocol's read-only paths see it: the columns
    claims and token checks read (the same names as :class:`Account`, so
    the claim builders take either) and its evidence, newest first.
    Secrets (password hash, TOTP) are not part of it: ``has_password`` says
    whether there is one."""

    id: int
    subject: str
    username: str
    name: str | None
    email: str | None
    email_verified: bool
    phone_number_enc: str | None
    phone_number_verified: bool
    resident_id_enc: str | None
    verified_name: str | None
    status: str
    reverification_required: bool
    password_change_required: bool
    session_generation: int
    has_password: bool
    password_reset_by_sms_at: datetime | None
    updated_at: datetime
    evidence: tuple[EvidenceSnapshot, ...]

    @property
    def is_active(self) -> bool:
        """True when the account may log in (:attr:`Account.is_active`)."""
        return self.status == "active"

    @property
    def may_receive_tokens(self) -> bool:
        """:attr:`Account.may_receive_tokens` of the snapshot."""
        return self.is_active and not self.reverification_required


def evidence_rows(account_id: int) -> list[VerificationEvidence]:
    """Every verification of the account ``account_id``, newest first (the
    order assurance reads them in: :func:`idp.accounts.verification.evidence_of`)."""
    return list(db.session.scalars(
        select(VerificationEvidence).where(VerificationEvidence.account_id == account_id)
        .order_by(VerificationEvidence.verified_at.desc(), VerificationEvidence.id.desc())))


def _load(account_id: int) -> AccountSnapshot | None:
    account = db.session.get(Account, account_id)
    if account is None:
        return None
    evidence = tuple(EvidenceSnapshot(row.id, row.method, row.result, row.level, row.reference,
                                      row.verified_at, row.expires_at, row.revoked_at)
                     for row in evidence_rows(account_id))
    return AccountSnapshot(
        id=account.id, subject=account.subject, username=account.username, name=account.name,
        email=account.email, email_verified=bool(account.email_verified),
        phone_number_enc=account.phone_number_enc,
        phone_number_verified=bool(account.phone_number_verified),
        resident_id_enc=account.resident_id_enc, verified_name=account.verified_name,
        status=account.status, reverification_required=bool(account.reverification_required),
        password_change_required=bool(account.password_change_required),
        session_generation=account.session_generation or 0, has_password=account.has_password,
        password_reset_by_sms_at=account.password_reset_by_sms_at,
        updated_at=account.updated_at, evidence=evidence)


_UNREAD = object()
#: Isolation levels whose statements each read the newest committed rows.
_STATEMENT_SNAPSHOTS = frozenset({"READ COMMITTED", "READ UNCOMMITTED", "AUTOCOMMIT"})


def _holds_a_snapshot() -> bool:
    """Whether the session's database transaction reads one snapshot for
    its whole life, taken at an earlier statement: SQLite's once it has
    written (Python's driver begins a transaction only before a write, so
    a read alone ends its own; WAL readers keep theirs until the
    transaction ends), PostgreSQL's at REPEATABLE READ or SERIALIZABLE (at
    its default, READ COMMITTED, each statement reads anew). Found by the
    benchmark of issue 9: the refresh grant reads its token first, and the
    account it then loaded was never kept, a reload on every refresh."""
    session = db.session()
    if not session.in_transaction():
        return False
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        return bool(connection.connection.dbapi_connection.in_transaction)
    level = (connection.get_execution_options().get("isolation_level")
             or connection.default_isolation_level)
    return level not in _STATEMENT_SNAPSHOTS


class AccountCache:
    """Per-process snapshots of accounts, checked against their version in
    the store on every use. Safe across the threads of a worker."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        # account id -> (loaded at, monotonic seconds; version; snapshot)
        self._entries: dict[int, tuple[float, str | None, AccountSnapshot]] = {}

    @staticmethod
    def version_key(account_id: int) -> str:
        """The store key of ``account_id``'s version, for a caller that reads
        it together with other keys (:meth:`Store.get_many`)."""
        return f"{VERSION_KEY}{account_id}"

    def get(self, account_id: int, version: object = _UNREAD) -> AccountSnapshot | None:
        """The snapshot of ``account_id``, or None if there is no such account.

        :param version: the value stored under :meth:`version_key`, when the
            caller has read it already (None for no entry); else it is read here.
        :raises StoreError: the version cannot be read (the caller fails closed).
        """
        if version is _UNREAD:
            version = self._store.get(self.version_key(account_id))
        current = version.get("v") if isinstance(version, dict) else None
        now = time.monotonic()
        hit = self._entries.get(account_id)
        if hit is not None and hit[1] == current and now - hit[0] < LOCAL_TTL:
            return hit[2]
        # A database transaction holding one snapshot since before the
        # version was read may read rows older than that version, and one
        # that changed the account may still roll back: what they read is
        # used, not kept.
        fresh = not _holds_a_snapshot()
        snapshot = _load(account_id)
        if not fresh or account_id in db.session.info.get(_CHANGED, ()):
            return snapshot
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            if snapshot is None:
                self._entries.pop(account_id, None)
            else:
                self._entries[account_id] = (now, current, snapshot)
        return snapshot

    def forget(self, account_ids: set[int]) -> None:
        """Drop ``account_ids`` from this process's cache."""
        with self._lock:
            for account_id in account_ids:
                self._entries.pop(account_id, None)

    def publish(self, account_ids: set[int]) -> None:
        """Write a new version of each account, so that every process
        reloads it at its next use; this process drops it now.

        :raises StoreError: the store cannot be written (other processes
            then see the change within :data:`LOCAL_TTL`).
        """
        self.forget(account_ids)
        for account_id in account_ids:
            self._store.put(self.version_key(account_id), {"v": random_token(12)}, VERSION_TTL)


def _cache() -> AccountCache | None:
    """The account cache of the application whose session flushed, if any."""
    if not has_app_context():
        return None
    runtime = current_app.extensions.get("idp")
    return getattr(runtime, "accounts", None)


def mark_changed(session: Session, account_id: int) -> None:
    """Record that ``session``'s transaction changes ``account_id`` in a way
    its flush events do not show (a bulk UPDATE): its version is rewritten
    when the transaction commits, and nothing happens on a rollback."""
    session.info.setdefault(_CHANGED, set()).add(account_id)
    cache = _cache()
    if cache is not None:
        cache.forget({account_id})


@event.listens_for(Session, "after_flush")
def _note_changes(session: Session, _context) -> None:
    changed = session.info.setdefault(_CHANGED, set())
    # A new account cannot be in any cache yet; new evidence changes its account.
    for instance in (*session.new, *session.dirty, *session.deleted):
        if isinstance(instance, Account) and instance not in session.new:
            changed.add(instance.id)
        elif isinstance(instance, VerificationEvidence) and instance.account_id is not None:
            changed.add(instance.account_id)
    cache = _cache()
    if cache is not None and changed:
        cache.forget(changed)


@event.listens_for(Session, "after_commit")
def _publish_changes(session: Session) -> None:
    changed = session.info.pop(_CHANGED, None)
    cache = _cache()
    if not changed or cache is None:
        return
    try:
        cache.publish(changed)
    except StoreError as exc:
        # The transaction is over: raising here would leave the session
        # unusable. Other processes see the change within LOCAL_TTL.
        log.warning("an account change is committed but the store could not be told; "
                    "other processes see it within %s s: %s", LOCAL_TTL, exc)


@event.listens_for(Session, "after_rollback")
def _forget_changes(session: Session) -> None:
    session.info.pop(_CHANGED, None)
