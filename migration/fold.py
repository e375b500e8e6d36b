"""The fold of one legacy row into the account space: match, merge or
hold for review, link, keep the legacy credential (docs/migration.md,
"The fold").

Rules, in the order they apply:

1. A row without a legacy id, or with an ID number that is present but not
   valid (a wrong check character, spreadsheet damage), is rejected with
   its reason; nothing damaged is repaired. Placeholders are missing
   values, not errors.
2. A row the fold saw before with the same values is unchanged: nothing is
   written (a second run writes nothing).
3. Two login names of one department equal but for case go to review
   (``username_case``); the row is held.
4. A valid ID number (its keyed blind index) that an account holds matches
   that account, unless the names disagree (``name_mismatch``, held). An
   ID number upgraded from 15 digits matches as weaker evidence (the
   record's reason says ``resident_id_15``). Rows of one department with
   one ID number are one person with several legacy links.
5. Otherwise the row is a new account. A phone another account holds is
   never a match: with the same name it proposes a merge (``phone_name``),
   with another ID number or name it is a shared phone (``shared_phone``),
   and the new account does not take the number.
6. A deleted row is a tombstone: linked to its person when the ID number
   matches one, else kept as a record only; never a credential.

Every write is flushed, never committed: the run commits a chunk of rows
as one transaction (:mod:`migration.runs`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select

from idp.accounts import links
from idp.accounts import service as accounts
from idp.accounts.identifiers import is_card_number
from idp.accounts.models import Account, LegacyCredential
from idp.extensions import db
from idp.runtime import Runtime
from idp.security import keyed_hash, random_token
from migration.mapping import Mapping
from migration.models import AttributeProvenance, LegacyRecord, MigrationConflict
from migration.normalise import PLACEHOLDER
from migration.rows import LegacyRow


@dataclass
class Counts:
    """What a plan or run decided, row by row (``--json`` keys).

    :ivar new: rows that became a new account.
    :ivar matched: rows merged into an account that existed (or that an
        earlier row of the source made).
    :ivar conflicts: rows held for review.
    :ivar proposals: rows folded (counted under ``new`` or ``matched``)
        whose phone another account holds: a merge proposed for review, or
        a shared phone.
    :ivar rejected: rows not folded, by reason in ``rejected_reasons``.
    :ivar tombstones: deleted rows.
    :ivar unchanged: rows folded before with the same values.
    :ivar updated: rows folded before whose values changed since.
    :ivar written: rows that changed anything (all but ``unchanged``).
    """

    new: int = 0
    matched: int = 0
    conflicts: int = 0
    proposals: int = 0
    rejected: int = 0
    tombstones: int = 0
    unchanged: int = 0
    updated: int = 0
    written: int = 0
    rejected_reasons: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        """The counts as a JSON object (reasons as an object of counts)."""
        return {"new": self.new, "matched": self.matched, "conflicts": self.conflicts,
                "proposals": self.proposals,
                "rejected": self.rejected, "tombstones": self.tombstones,
                "unchanged": self.unchanged, "updated": self.updated,
                "written": self.written, "rejected_reasons": dict(self.rejected_reasons)}

    @classmethod
    def from_dict(cls, data: dict) -> Counts:
        """The counts :meth:`as_dict` gave."""
        known = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        known["rejected_reasons"] = Counter(data.get("rejected_reasons", {}))
        return cls(**known)


@dataclass(frozen=True)
class Department:
    """What the fold needs of a department's mapping.

    :ivar code: the department's code.
    :ivar trust: the precedence of its attributes in merges (0-100).
    :ivar schemes: the row's scheme name (``""`` for the one scheme) ->
        the scheme as written, which a legacy credential keeps.
    :ivar pepper_env: the environment variable of its pepper, or None.
    """

    code: str
    trust: int
    schemes: dict[str, str]
    pepper_env: str | None

    @classmethod
    def of(cls, mapping: Mapping) -> Department:
        """The department of a checked mapping."""
        rules = mapping.password
        return cls(mapping.code, mapping.trust, dict(rules.texts) if rules else {},
                   rules.pepper_env if rules else None)


def generated_username(department: str) -> str:
    """A username for an account whose legacy login name another person
    holds (or that had none): the department's code and a random suffix."""
    return f"{department.lower()}-{random_token(9).lower()}"


#: The key of a held row's fold data in its record's raw values.
PENDING = "_pending"

#: The attributes a merge may change, and the accounts' columns they live in.
ATTRIBUTES = ("name", "email")


class Folder:
    """Folds the rows of one mapping, one at a time, into the account space.

    :param rt: the runtime (keys, settings).
    :param department: the department the rows come from.
    :param batch_id: the batch the records are written for.
    :param counts: where the decisions are counted.
    """

    def __init__(self, rt: Runtime, department: Department, batch_id: int,
                 counts: Counts) -> None:
        self.rt = rt
        self.rules = department
        self.department = department.code
        self.batch_id = batch_id
        self.counts = counts

    # -- keys ---------------------------------------------------------------

    def _index(self, kind: str, value: str) -> str:
        return self.rt.pii.blind_index(kind, value)

    def _legacy_index(self, legacy_id: str) -> str:
        # The legacy link's own index (idp.accounts.links), so a record and
        # its link name the same value.
        return self._index(f"link:legacy:{self.department}", legacy_id)

    def _digest(self, row: LegacyRow) -> str:
        values = [row.raw, row.password, row.salt, row.scheme,
                  self.rules.schemes.get(row.scheme, ""), self.rules.trust]
        return keyed_hash(self.rt.token_hmac_key, json.dumps(values, sort_keys=True,
                                                             ensure_ascii=False),
                          f"legacy_row:{self.department}")

    # -- the decision --------------------------------------------------------

    def fold(self, row: LegacyRow) -> str:
        """Decide ``row`` and write what it gives (flushed).

        :returns: the outcome: one of :data:`migration.models.OUTCOMES`,
            or ``unchanged`` / ``updated``.
        """
        if row.legacy_id is None or len(row.legacy_id) > links.MAX_LENGTH \
                or not row.legacy_id.isprintable():
            return self._reject_unkeyed("legacy_id")
        digest = self._digest(row)
        legacy_index = self._legacy_index(row.legacy_id)
        record = db.session.scalar(select(LegacyRecord).where(
            LegacyRecord.department == self.department,
            LegacyRecord.legacy_id_index == legacy_index))
        if record is not None:
            if record.digest == digest:
                self.counts.unchanged += 1
                return "unchanged"
            if record.account_id is not None:
                return self._update(record, row, digest)
            # Rejected, held or a tombstone of nobody: decide it afresh.
            db.session.execute(delete(MigrationConflict).where(
                MigrationConflict.record_id == record.id))
            db.session.delete(record)
            db.session.flush()
        self.counts.written += 1
        record = LegacyRecord(
            department=self.department, legacy_id_index=legacy_index,
            legacy_id_enc=self.rt.pii.encrypt(f"link:legacy:{self.department}", row.legacy_id),
            batch_id=self.batch_id, outcome="rejected", digest=digest,
            raw_enc=self._sealed(row), created_at=row.created_at, last_login_at=row.last_login_at)
        problem = row.resident_id.problem
        if problem is not None and problem != PLACEHOLDER:
            return self._reject(record, f"resident_id_{problem}")
        if row.password is not None and self._scheme_text(row) is None:
            return self._reject(record, "password_scheme")
        if row.resident_id.value is not None:
            record.resident_id_index = self._index("resident_id", row.resident_id.value)
        if row.phone.value is not None:
            record.phone_index = self._index("phone", row.phone.value)
        folded = self.folded_username(row)
        if folded is not None:
            record.username_index = self._index(f"legacy_username:{self.department}", folded)
        db.session.add(record)
        db.session.flush()
        return self._decide(record, row)

    def _sealed(self, row: LegacyRow, pending: dict | None = None) -> str:
        """The row's raw values (and a held row's ``pending`` fold data),
        encrypted for the record."""
        audited: dict = dict(row.raw)
        if row.resident_id.alias:
            audited["resident_id_15"] = row.resident_id.alias
        if pending is not None:
            audited[PENDING] = pending
        return self.rt.pii.encrypt(f"legacy_row:{self.department}",
                                   json.dumps(audited, ensure_ascii=False))

    def _decide(self, record: LegacyRecord, row: LegacyRow) -> str:
        if record.username_index is not None and self._username_collides(record):
            return self._hold(record, row, "username_case", None)
        account = None
        if record.resident_id_index is not None:
            account = db.session.scalar(select(Account).where(
                Account.resident_id_index == record.resident_id_index))
        if account is not None:
            known = account.verified_name or account.name
            if row.name.value is not None and known is not None and known != row.name.value:
                return self._hold(record, row, "name_mismatch", account)
            record.reason = "resident_id_15" if row.resident_id.weak else "resident_id"
            if row.status == "deleted":
                return self._tombstone(record, account)
            self.merge(account, record, row)
            record.outcome = "merged"
            self.counts.matched += 1
            return "merged"
        if row.status == "deleted":
            return self._tombstone(record, None)
        self.new_account(record, row)
        record.outcome = "imported"
        self.counts.new += 1
        return "imported"

    # -- outcomes ------------------------------------------------------------

    def _reject_unkeyed(self, reason: str) -> str:
        # Without a legacy id the row cannot be recorded; the batch counts
        # it, and the report gives the count.
        self.counts.written += 1
        self.counts.rejected += 1
        self.counts.rejected_reasons[reason] += 1
        return "rejected"

    def _reject(self, record: LegacyRecord, reason: str) -> str:
        record.outcome = "rejected"
        record.reason = reason
        db.session.add(record)
        db.session.flush()
        self.counts.rejected += 1
        self.counts.rejected_reasons[reason] += 1
        return "rejected"

    def _hold(self, record: LegacyRecord, row: LegacyRow, kind: str,
              account: Account | None) -> str:
        record.outcome = "conflict"
        record.reason = kind
        # Until an operator decides, the record alone keeps what the row
        # needs to be folded then: its credential and status, encrypted.
        pending = {"password": row.password, "salt": row.salt, "scheme": row.scheme,
                   "status": row.status, "trust": self.rules.trust,
                   "schemes": self.rules.schemes, "pepper_env": self.rules.pepper_env}
        record.raw_enc = self._sealed(row, pending)
        db.session.add(MigrationConflict(record_id=record.id, kind=kind,
                                         account_id=account.id if account else None))
        db.session.flush()
        self.counts.conflicts += 1
        return "conflict"

    def _tombstone(self, record: LegacyRecord, account: Account | None) -> str:
        record.outcome = "tombstone"
        if account is not None:
            record.account_id = account.id
            links.link(self.rt, account, "legacy", self.department, self._legacy_id(record))
        db.session.flush()
        self.counts.tombstones += 1
        return "tombstone"

    def _legacy_id(self, record: LegacyRecord) -> str:
        return self.rt.pii.decrypt(f"link:legacy:{self.department}", record.legacy_id_enc)

    # -- usernames -------------------------------------------------------------

    @staticmethod
    def folded_username(row: LegacyRow) -> str | None:
        """The row's login name as the provider compares usernames (case
        folded), or None when it has none a link can hold."""
        if row.username is None:
            return None
        folded = accounts.normalize_username(row.username)
        return folded if folded and len(folded) <= links.MAX_LENGTH \
            and folded.isprintable() else None

    def _username_collides(self, record: LegacyRecord) -> bool:
        """Whether another row of the department has the login name but
        for case (case M-MATCH-3): the two are different legacy users."""
        other = db.session.scalar(select(LegacyRecord.id).where(
            LegacyRecord.department == self.department,
            LegacyRecord.username_index == record.username_index,
            LegacyRecord.id != record.id).limit(1))
        return other is not None

    @staticmethod
    def _may_be_username(folded: str) -> bool:
        return (accounts.USERNAME_RE.match(folded) is not None and not folded.isdigit()
                and not accounts.is_resident_id(folded) and not is_card_number(folded))

    def _alias(self, account: Account, row: LegacyRow) -> None:
        """A login name that is not the account's username stays an alias
        that works on the department's clients."""
        folded = self.folded_username(row)
        if folded is None or account.username == folded:
            return
        if links.find_link(self.rt, "alias", self.department, folded) is None:
            links.link(self.rt, account, "alias", self.department, folded)

    # -- accounts ----------------------------------------------------------------

    def new_account(self, record: LegacyRecord, row: LegacyRow, *,
                    claims: bool = True) -> Account:
        """A new account for ``row``, linked with its credential (flushed).

        :param claims: whether the account takes the row's ID number and
            login name; an operator keeping a row apart from the person
            who holds them gives False.
        """
        account = Account(subject=random_token(16),
                          username=generated_username(self.department),
                          password_hash=None,
                          status="suspended" if row.status == "disabled" else "active")
        # The legacy login name is the username when nobody holds it, case
        # insensitively; else an alias (:meth:`_alias`).
        folded = self.folded_username(row) if claims else None
        if folded is not None and self._may_be_username(folded) \
                and accounts.find_by_username(folded) is None:
            account.username = folded
        db.session.add(account)
        if claims and row.resident_id.value is not None:
            accounts.set_resident_id(self.rt, account, row.resident_id.value)
        db.session.flush()
        if claims:
            self._alias(account, row)
        self._phone(account, record, row)
        self._attributes(account, record, row)
        self._link(account, record, row)
        return account

    def merge(self, account: Account, record: LegacyRecord, row: LegacyRow) -> None:
        """Link ``row`` to the person's ``account``: its credential, login
        name (an alias unless it is the username), phone when the account
        has none, attributes by precedence (flushed)."""
        if row.status == "active" and account.status == "suspended" \
                and self._suspended_by_migration(account):
            account.status = "active"
        self._alias(account, row)
        if account.phone_number_index is None:
            self._phone(account, record, row)
        self._attributes(account, record, row)
        self._link(account, record, row)

    @staticmethod
    def _suspended_by_migration(account: Account) -> bool:
        """Whether the account is suspended only because every legacy row it
        was made from was disabled: an active row of the same person lifts
        that, never an operator's suspension."""
        reasons = db.session.scalars(select(LegacyRecord.reason).where(
            LegacyRecord.account_id == account.id,
            LegacyRecord.outcome.in_(("imported", "merged")))).all()
        return bool(reasons) and all(reason == "disabled" for reason in reasons)

    def _phone(self, account: Account, record: LegacyRecord, row: LegacyRow) -> None:
        if record.phone_index is None:
            return
        holder = db.session.scalar(select(Account).where(
            Account.phone_number_index == record.phone_index))
        if holder is None:
            # A legacy number is a claim, never proven: not usable for an
            # SMS login until its holder proves it (case M-MATCH-1).
            accounts.set_phone_number(self.rt, account, row.phone.value, verified=False)
            self._provenance(account, "phone_number", record, row)
            return
        if holder.id == account.id:
            return
        same_name = row.name.value is not None and row.name.value == holder.name
        other_id = (holder.resident_id_index is not None
                    and holder.resident_id_index != record.resident_id_index)
        kind = "phone_name" if same_name and not other_id else "shared_phone"
        db.session.add(MigrationConflict(record_id=record.id, kind=kind, account_id=holder.id))
        self.counts.proposals += 1

    def _attributes(self, account: Account, record: LegacyRecord, row: LegacyRow) -> None:
        """Field-level precedence: a higher ``trust`` wins, then the more
        recent row; a value the provider did not take from migration (the
        user's own, a registry's) is never replaced."""
        offered = {"name": row.name.value, "email": row.email}
        observed = row.last_login_at or row.created_at
        for attribute in ATTRIBUTES:
            value = offered[attribute]
            if value is None or len(value) > (128 if attribute == "name" else 254):
                continue
            current = getattr(account, attribute)
            source = db.session.scalar(select(AttributeProvenance).where(
                AttributeProvenance.account_id == account.id,
                AttributeProvenance.attribute == attribute))
            if current is not None and source is None:
                continue
            if source is not None and not self._wins(source, observed):
                continue
            setattr(account, attribute, value)
            self._provenance(account, attribute, record, row, source)
        if row.resident_id.value is not None and account.resident_id_index is not None:
            if db.session.scalar(select(AttributeProvenance.id).where(
                    AttributeProvenance.account_id == account.id,
                    AttributeProvenance.attribute == "resident_id")) is None \
                    and record.resident_id_index == account.resident_id_index \
                    and account.verified_name is None:
                self._provenance(account, "resident_id", record, row)

    def _wins(self, source: AttributeProvenance, observed: datetime | None) -> bool:
        if self.rules.trust != source.trust:
            return self.rules.trust > source.trust
        return observed is not None and (source.observed_at is None
                                         or observed > source.observed_at)

    def _provenance(self, account: Account, attribute: str, record: LegacyRecord,
                    row: LegacyRow, source: AttributeProvenance | None = None) -> None:
        if source is None:
            source = AttributeProvenance(account_id=account.id, attribute=attribute)
            db.session.add(source)
        source.record_id = record.id
        source.department = self.department
        source.trust = self.rules.trust
        source.observed_at = row.last_login_at or row.created_at

    def _scheme_text(self, row: LegacyRow) -> str | None:
        return self.rules.schemes.get(row.scheme)

    def _link(self, account: Account, record: LegacyRecord, row: LegacyRow) -> None:
        record.account_id = account.id
        if row.status == "disabled":
            record.reason = "disabled"
        link = links.link(self.rt, account, "legacy", self.department, row.legacy_id)
        if row.password is not None and row.status == "active" \
                and (account.password_hash is None or account.password_change_required
                     or self._has_legacy(account)):
            self._credential(account, link.id, row)
        db.session.flush()

    @staticmethod
    def _has_legacy(account: Account) -> bool:
        return db.session.scalar(select(LegacyCredential.id).where(
            LegacyCredential.account_id == account.id).limit(1)) is not None

    def _credential(self, account: Account, link_id: int, row: LegacyRow) -> None:
        secret = json.dumps({"hash": row.password, "salt": row.salt, "username": row.username},
                            ensure_ascii=False)
        credential = db.session.scalar(select(LegacyCredential).where(
            LegacyCredential.link_id == link_id))
        if credential is None:
            credential = LegacyCredential(account_id=account.id, link_id=link_id,
                                          department=self.department)
            db.session.add(credential)
        credential.scheme = self._scheme_text(row)
        credential.secret_enc = self.rt.pii.encrypt(f"legacy_credential:{self.department}",
                                                    secret)
        credential.pepper_env = self.rules.pepper_env

    # -- rows seen before ----------------------------------------------------------

    def _update(self, record: LegacyRecord, row: LegacyRow, digest: str) -> str:
        """A row folded before whose values changed: its credential follows
        the new hash while the account has not logged in since, a deletion
        makes it a tombstone; who the row belongs to is not decided again
        (``idp migrate undo-merge`` splits a wrong merge)."""
        account = db.session.get(Account, record.account_id)
        record.digest = digest
        record.batch_id = self.batch_id
        record.raw_enc = self._sealed(row)
        record.created_at, record.last_login_at = row.created_at, row.last_login_at
        link = links.find_link(self.rt, "legacy", self.department, row.legacy_id)
        credential = db.session.scalar(select(LegacyCredential).where(
            LegacyCredential.link_id == link.id)) if link is not None else None
        if row.status != "active" or row.password is None:
            if credential is not None:
                db.session.delete(credential)
            if row.status == "deleted":
                record.outcome = "tombstone"
        elif credential is not None and self._scheme_text(row) is not None:
            self._credential(account, link.id, row)
        if row.status == "active":
            self._attributes(account, record, row)
        db.session.flush()
        self.counts.updated += 1
        self.counts.written += 1
        return "updated"
