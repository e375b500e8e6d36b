"""The fold of legacy rows into the account space: match, merge or hold for
review, link, keep the legacy credential (docs/migration.md, "The fold").

Rules, in the order they apply to each row:

1. A row without a usable legacy id, with the legacy id of a row this run
   already folded, or with an ID number that is present but not valid (a
   wrong check character, spreadsheet damage) is rejected with its reason;
   nothing damaged is repaired. Placeholders are missing values, not
   errors.
2. A row folded before with the same values is unchanged: nothing is
   written (a second run writes nothing). One folded before into an
   account whose values changed follows them (its credential, attributes,
   a deletion); one that was rejected, held or a tombstone of nobody is
   decided afresh.
3. Two login names of one department equal but for case go to review
   (``username_case``); the row is held.
4. A valid ID number (its keyed blind index) that an account holds matches
   that account, unless the names disagree (``name_mismatch``, held). An
   ID number upgraded from 15 digits matches as weaker evidence (the
   record's reason says ``resident_id_15``). Rows of one department with
   one ID number are one person with several legacy links.
5. Otherwise the row is a new account. A phone another account holds is
   never a match: with the same name it proposes a merge (``phone_name``),
   else it is a shared phone (``shared_phone``); the new account does not
   take the number.
6. A deleted row is a tombstone: linked to its person when the ID number
   matches one, else kept as a record only; never a credential.

Rows are folded a chunk at a time (:meth:`Folder.fold_chunk`): everything
the chunk's rows need is read in a few queries, the rows are decided in
memory in source order, and what they give is written in a few bulk
statements. Nothing is committed here: the run commits each chunk as one
transaction (:mod:`migration.runs`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, delete, distinct, func, or_, select, update

from idp.accounts import links
from idp.accounts import service as accounts
from idp.accounts.identifiers import is_card_number
from idp.accounts.legacy import has_legacy_credentials
from idp.accounts.models import Account, IdentityLink, LegacyCredential
from idp.accounts.snapshots import mark_changed
from idp.extensions import db
from idp.runtime import Runtime
from idp.security import keyed_hash, random_token
from idp.timeutil import utcnow
from migration import bulk
from migration.mapping import Mapping
from migration.models import AttributeProvenance, LegacyRecord, MigrationConflict
from migration.normalise import PLACEHOLDER
from migration.rows import LegacyRow

#: The key of a held row's fold data in its record's raw values.
PENDING = "_pending"
#: The attributes a merge may change.
ATTRIBUTES = ("name", "email")
#: Longest name and e-mail address an account holds.
LIMITS = {"name": 128, "email": 254}
#: The columns of a new account the fold may set, so that every new
#: account of a chunk has the same keys and the chunk's accounts go to the
#: database as one statement.
_NEW_ACCOUNT = {"name": None, "email": None, "resident_id_enc": None,
                "resident_id_index": None, "phone_number_enc": None,
                "phone_number_index": None, "phone_number_verified": False}


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
    :ivar updated: rows folded before into an account whose values changed.
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
                "proposals": self.proposals, "rejected": self.rejected,
                "tombstones": self.tombstones, "unchanged": self.unchanged,
                "updated": self.updated, "written": self.written,
                "rejected_reasons": dict(self.rejected_reasons)}


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


def folded_username(row: LegacyRow) -> str | None:
    """The row's login name as the provider compares usernames (case
    folded), or None when it has none a link can hold."""
    if row.username is None:
        return None
    folded = accounts.normalize_username(row.username)
    return folded if folded and len(folded) <= links.MAX_LENGTH and folded.isprintable() \
        else None


def _email(raw: str | None) -> str | None:
    """A legacy e-mail address as the provider stores one, or None when it
    is not a valid address (never the ``email`` claim then)."""
    if raw is None:
        return None
    try:
        return accounts.normalize_email(raw)
    except accounts.AccountError:
        return None


def _may_be_username(folded: str) -> bool:
    return (accounts.USERNAME_RE.match(folded) is not None and not folded.isdigit()
            and not (len(folded) in (15, 18) and accounts.is_resident_id(folded))
            and not is_card_number(folded))


@dataclass(eq=False)
class Person:
    """An account as a chunk knows it: read from the database, or new in
    the chunk (``id`` None until inserted). ``changes`` are the columns a
    known account's row gets."""

    id: int | None
    username: str
    name: str | None
    email: str | None
    verified_name: str | None
    resident_id_index: str | None
    phone_index: str | None
    status: str
    has_password: bool
    holds_legacy: bool
    phone_verified: bool = False
    values: dict = field(default_factory=dict)
    changes: dict = field(default_factory=dict)
    #: The reasons of the rows folded into it (an active row lifts a
    #: suspension that only disabled rows made).
    reasons: list | None = None

    @property
    def new(self) -> bool:
        return "subject" in self.values

    def set(self, column: str, value) -> None:
        """Give the account ``column`` = ``value``."""
        (self.values if self.new else self.changes)[column] = value


@dataclass(eq=False)
class Decision:
    """What one row gives: its record and the links, credential,
    provenance and conflicts that hang off it."""

    row: LegacyRow
    legacy_index: str
    digest: str
    record: dict
    record_id: int | None = None
    person: Person | None = None
    link_id: int | None = None
    link_existed: bool = False
    legacy_link: bool = False
    credential: bool = False
    alias: str | None = None
    conflicts: list = field(default_factory=list)
    #: The row's login name as usernames compare (:func:`folded_username`).
    folded: str | None = None


class Folder:
    """Folds the rows of one department into the account space, a chunk at
    a time.

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
        self.placeholder_people = rt.settings["migration"]["placeholder_people"]

    # -- keys ---------------------------------------------------------------

    def _index(self, kind: str, value: str) -> str:
        return self.rt.pii.blind_index(kind, value)

    def legacy_index(self, legacy_id: str) -> str:
        """The legacy id's blind index: the legacy link's own, so a record
        and its link name the same value."""
        return self._index(f"link:legacy:{self.department}", legacy_id)

    def _digest(self, row: LegacyRow) -> str:
        values = [row.raw, row.password, row.salt, row.scheme,
                  self.rules.schemes.get(row.scheme, ""), self.rules.trust]
        return keyed_hash(self.rt.token_hmac_key, json.dumps(values, sort_keys=True,
                                                             ensure_ascii=False),
                          f"legacy_row:{self.department}")

    def sealed(self, row: LegacyRow, pending: dict | None = None) -> str:
        """The row's raw values (and a held row's ``pending`` fold data),
        encrypted for its record."""
        audited: dict = dict(row.raw)
        if row.resident_id.alias:
            audited["resident_id_15"] = row.resident_id.alias
        if pending is not None:
            audited[PENDING] = pending
        return self.rt.pii.encrypt(f"legacy_row:{self.department}",
                                   json.dumps(audited, ensure_ascii=False))

    # -- one chunk ------------------------------------------------------------

    def fold_chunk(self, rows: Sequence[LegacyRow]) -> None:
        """Decide ``rows`` in order and write what they give (flushed)."""
        keyed: list[tuple[LegacyRow, str]] = []
        for row in rows:
            if row.legacy_id is None or len(row.legacy_id) > links.MAX_LENGTH \
                    or not row.legacy_id.isprintable():
                self._count_rejected("legacy_id")
            else:
                keyed.append((row, self.legacy_index(row.legacy_id)))
        known = self._records([index for _row, index in keyed])
        chunk = _Chunk(self)
        stale: list[int] = []
        for row, legacy_index in keyed:
            digest = self._digest(row)
            record = known.get(legacy_index)
            if legacy_index in chunk.seen or (record is not None
                                              and record.batch_id == self.batch_id):
                self._count_rejected("duplicate_legacy_id")
                continue
            chunk.seen.add(legacy_index)
            if record is not None and record.digest == digest:
                self.counts.unchanged += 1
                continue
            if row.defect is not None:
                # Its earlier values stay as they were folded.
                self._count_rejected(row.defect)
                continue
            self.counts.written += 1
            if record is not None and record.account_id is None:
                # Rejected, held or a tombstone of nobody: decided afresh.
                stale.append(record.id)
                record = None
            chunk.add(Decision(row, legacy_index, digest, {}, record_id=(
                record.id if record is not None else None)), record)
        if stale:
            db.session.execute(delete(MigrationConflict).where(
                MigrationConflict.record_id.in_(stale)))
            db.session.execute(delete(LegacyRecord).where(LegacyRecord.id.in_(stale)))
        chunk.decide()
        chunk.write()

    def _count_rejected(self, reason: str) -> None:
        # A row without a usable legacy id cannot be recorded, nor a second
        # row of the same id: the batch counts them.
        self.counts.written += 1
        self.counts.rejected += 1
        self.counts.rejected_reasons[reason] += 1

    def _records(self, indexes: list[str]) -> dict[str, LegacyRecord]:
        found: dict[str, LegacyRecord] = {}
        for part in bulk.parts(indexes):
            for record in db.session.execute(select(
                    LegacyRecord.id, LegacyRecord.legacy_id_index, LegacyRecord.digest,
                    LegacyRecord.account_id, LegacyRecord.batch_id, LegacyRecord.outcome,
                    LegacyRecord.reason).where(
                    LegacyRecord.department == self.department,
                    bulk.among(LegacyRecord.legacy_id_index, part))):
                found[record.legacy_id_index] = record
        return found

    def scheme_text(self, row: LegacyRow) -> str | None:
        """The scheme of the row's password, as the mapping wrote it."""
        return self.rules.schemes.get(row.scheme)


class _Chunk:
    """The rows of one chunk: read what they need, decide, write."""

    def __init__(self, folder: Folder) -> None:
        self.f = folder
        self.rt = folder.rt
        self.department = folder.department
        self.counts = folder.counts
        self.decisions: list[Decision] = []
        self.seen: set[str] = set()
        self.updates: dict[int, Decision] = {}
        self.people: dict[int, Person] = {}
        self.by_resident_id: dict[str, Person] = {}
        self.by_phone: dict[str, Person | None] = {}
        self.usernames: set[str] = set()
        self.aliases: set[str] = set()
        self.username_records: Counter = Counter()
        self.provenance: dict[tuple[int, str], dict] = {}
        self.new_provenance: dict[tuple[int, str], dict] = {}
        #: Phone and ID-number indexes -> how many distinct people carry them.
        self.carried: Counter = Counter()

    def add(self, decision: Decision, record) -> None:
        """A row to decide; ``record`` is its record when it was folded
        into an account before (its values changed)."""
        row = decision.row
        decision.record.update(
            department=self.department, legacy_id_index=decision.legacy_index,
            legacy_id_enc=self.rt.pii.encrypt(f"link:legacy:{self.department}",
                                              row.legacy_id),
            batch_id=self.f.batch_id, outcome="rejected", reason=None, digest=decision.digest,
            raw_enc=self.f.sealed(row), created_at=row.created_at,
            last_login_at=row.last_login_at, decided_at=utcnow(),
            resident_id_index=(self.f._index("resident_id", row.resident_id.value)
                               if row.resident_id.value is not None else None),
            phone_index=(self.f._index("phone", row.phone.value)
                         if row.phone.value is not None else None),
            username_index=None, account_id=None)
        decision.folded = folded_username(row)
        if decision.folded is not None:
            decision.record["username_index"] = self.f._index(
                f"legacy_username:{self.department}", decision.folded)
        if record is not None:
            self.updates[record.account_id] = decision
            decision.record.update(account_id=record.account_id, outcome=record.outcome,
                                   reason=record.reason)
        self.decisions.append(decision)

    # -- reads ------------------------------------------------------------------

    def _read(self) -> None:
        """Everything the chunk's rows need, in a few queries."""
        records = [d.record for d in self.decisions]
        self._count_carriers(records)
        rid = [r["resident_id_index"] for r in records if r["resident_id_index"]]
        phones = [r["phone_index"] for r in records if r["phone_index"]]
        names = [d.folded for d in self.decisions if d.folded is not None]
        account_ids = list(self.updates)
        columns = _PERSON_COLUMNS
        found = []
        for part in bulk.parts(rid):
            found += db.session.execute(select(*columns).where(
                bulk.among(Account.resident_id_index, part))).all()
        for part in bulk.parts(phones):
            found += db.session.execute(select(*columns).where(
                bulk.among(Account.phone_number_index, part))).all()
        for part in bulk.parts(account_ids):
            found += db.session.execute(select(*columns).where(bulk.among(Account.id, part))).all()
        for row in found:
            if row.id not in self.people:
                self.people[row.id] = _person_of(row)
        for person in self.people.values():
            if person.resident_id_index:
                self.by_resident_id[person.resident_id_index] = person
            if person.phone_index:
                self.by_phone[person.phone_index] = person
        ids = list(self.people)
        for part in bulk.parts(ids):
            for (account_id,) in db.session.execute(select(LegacyCredential.account_id).where(
                    bulk.among(LegacyCredential.account_id, part)).distinct()):
                self.people[account_id].holds_legacy = True
            for item in db.session.execute(select(
                    AttributeProvenance.id, AttributeProvenance.account_id,
                    AttributeProvenance.attribute, AttributeProvenance.trust,
                    AttributeProvenance.observed_at).where(
                    bulk.among(AttributeProvenance.account_id, part))):
                self.provenance[(item.account_id, item.attribute)] = {
                    "id": item.id, "trust": item.trust, "observed_at": item.observed_at}
        for part in bulk.parts(names):
            self.usernames.update(db.session.scalars(select(Account.username).where(
                bulk.among(Account.username, part))))
        alias_index = {self._alias_index(name): name for name in names}
        for part in bulk.parts(list(alias_index)):
            self.aliases.update(alias_index[index] for index in db.session.scalars(
                select(IdentityLink.value_index).where(
                    IdentityLink.kind == "alias", IdentityLink.issuer == self.department,
                    bulk.among(IdentityLink.value_index, part))))
        user_index = [r["username_index"] for r in records if r["username_index"]]
        for part in bulk.parts(user_index):
            self.username_records.update(db.session.scalars(select(
                LegacyRecord.username_index).where(
                LegacyRecord.department == self.department,
                bulk.among(LegacyRecord.username_index, part))))

    def _count_carriers(self, records: list[dict]) -> None:
        """How many distinct people the chunk's phones and ID numbers are
        carried by already: the accounts their records went to, and each
        record that went to none (held, or a tombstone of nobody)."""
        people = (func.count(distinct(LegacyRecord.account_id))
                  + func.sum(case((LegacyRecord.account_id.is_(None), 1), else_=0)))
        for name in ("phone_index", "resident_id_index"):
            column = getattr(LegacyRecord, name)
            values = list({r[name] for r in records if r[name]})
            for part in bulk.parts(values):
                self.carried.update(dict(db.session.execute(
                    select(column, people).where(bulk.among(column, part),
                                                 LegacyRecord.outcome != "rejected")
                    .group_by(column)).all()))

    def _placeholders(self, d: Decision) -> None:
        """A phone or ID number that :attr:`Folder.placeholder_people`
        distinct people carry already is a placeholder for this row (case
        M-MATCH-2): never matched on, never stored."""
        for name in ("phone_index", "resident_id_index"):
            index = d.record[name]
            if index is not None and self.carried[index] >= self.f.placeholder_people:
                d.record[name] = None

    def _carry(self, d: Decision, new_person: bool) -> None:
        if new_person:
            for name in ("phone_index", "resident_id_index"):
                if d.record[name] is not None:
                    self.carried[d.record[name]] += 1

    def _alias_index(self, name: str) -> str:
        return links.value_index(self.rt, "alias", self.department, name)

    # -- decisions --------------------------------------------------------------

    def decide(self) -> None:
        """Decide each row in source order."""
        if not self.decisions:
            return
        self._read()
        for decision in self.decisions:
            if decision.record.get("account_id") is not None:
                self._update(decision)
            else:
                self._decide(decision)

    def _decide(self, d: Decision) -> None:
        self._placeholders(d)
        self._decide_row(d)
        self._carry(d, d.record["outcome"] in ("imported", "conflict")
                    or (d.record["outcome"] == "tombstone" and d.person is None))

    def _decide_row(self, d: Decision) -> None:
        row, record = d.row, d.record
        if row.defect is not None:
            return self._reject(d, row.defect)
        problem = row.resident_id.problem
        if problem is not None and problem != PLACEHOLDER:
            return self._reject(d, f"resident_id_{problem}")
        if row.password is not None and self.f.scheme_text(row) is None:
            return self._reject(d, "password_scheme")
        index = record["username_index"]
        if index is not None:
            collides = self.username_records[index] > 0
            self.username_records[index] += 1
            if collides:
                return self._hold(d, "username_case", None)
        person = self.by_resident_id.get(record["resident_id_index"]) \
            if record["resident_id_index"] else None
        if person is not None:
            known = person.verified_name or person.name
            if row.name.value is not None and known is not None and known != row.name.value:
                return self._hold(d, "name_mismatch", person)
            record["reason"] = "resident_id_15" if row.resident_id.weak else "resident_id"
            if row.status == "deleted":
                return self._tombstone(d, person)
            # Without two names that agree, the ID number alone does not
            # say the row is this person (a child's row with a parent's
            # number): the link is made, the row's password is not.
            confirmed = row.name.value is not None and known is not None
            if not confirmed:
                record["reason"] = "resident_id_unconfirmed"
            self.merge(d, person, credential=confirmed)
            record["outcome"] = "merged"
            self.counts.matched += 1
            return None
        if row.status == "deleted":
            return self._tombstone(d, None)
        self.new_account(d)
        record["outcome"] = "imported"
        self.counts.new += 1
        return None

    def _reject(self, d: Decision, reason: str) -> None:
        d.record.update(outcome="rejected", reason=reason)
        self.counts.rejected += 1
        self.counts.rejected_reasons[reason] += 1

    def _hold(self, d: Decision, kind: str, person: Person | None) -> None:
        row = d.row
        d.record.update(outcome="conflict", reason=kind)
        # Until an operator decides, the record alone keeps what the row
        # needs to be folded then: its credential and status, encrypted.
        d.record["raw_enc"] = self.f.sealed(row, {
            "password": row.password, "salt": row.salt, "scheme": row.scheme,
            "status": row.status, "trust": self.f.rules.trust,
            "schemes": self.f.rules.schemes, "pepper_env": self.f.rules.pepper_env})
        d.conflicts.append((kind, person))
        self.counts.conflicts += 1

    def _tombstone(self, d: Decision, person: Person | None) -> None:
        d.record["outcome"] = "tombstone"
        if person is not None:
            d.person = person
            d.legacy_link = True
        self.counts.tombstones += 1

    def new_account(self, d: Decision, *, claims: bool = True) -> Person:
        """A new account for the row, linked with its credential.

        :param claims: whether the account takes the row's ID number and
            login name; an operator keeping a row apart from the person
            who holds them gives False.
        """
        row = d.row
        folded = d.folded if claims else None
        username = generated_username(self.department)
        if folded is not None and _may_be_username(folded) and folded not in self.usernames:
            username = folded
        self.usernames.add(username)
        person = Person(None, username, None, None, None, None, None,
                        "suspended" if row.status == "disabled" else "active", False, False,
                        values={**_NEW_ACCOUNT, "subject": random_token(16),
                                "username": username,
                                "status": "suspended" if row.status == "disabled"
                                else "active"}, reasons=[])
        if claims and d.record["resident_id_index"] is not None:
            index = d.record["resident_id_index"]
            person.resident_id_index = index
            person.set("resident_id_enc", self.rt.pii.encrypt("resident_id",
                                                              row.resident_id.value))
            person.set("resident_id_index", index)
            self.by_resident_id[index] = person
        if claims:
            self._alias(d, person)
        self._phone(d, person)
        self._attributes(d, person)
        self._link(d, person)
        return person

    def merge(self, d: Decision, person: Person, *, credential: bool = True) -> None:
        """Link the row to the person's account: its credential (unless
        ``credential`` is False), login name (an alias unless it is the
        username), phone when the account has none, attributes by
        precedence."""
        row = d.row
        self._alias(d, person)
        if credential:
            # A row the names do not confirm says nothing about the person:
            # it neither names the account (the next row's comparison would
            # rest on it), nor gives it a phone, nor lifts its suspension.
            if row.status == "active" and person.status == "suspended" \
                    and self._suspended_by_migration(person):
                person.status = "active"
                person.set("status", "active")
            if person.phone_index is None:
                self._phone(d, person)
            self._attributes(d, person)
        self._link(d, person, credential=credential)

    def _suspended_by_migration(self, person: Person) -> bool:
        """Whether the account is suspended only because every legacy row it
        was made from was disabled: an active row of the same person lifts
        that, never an operator's suspension."""
        if person.reasons is None:
            person.reasons = list(db.session.scalars(select(LegacyRecord.reason).where(
                LegacyRecord.account_id == person.id,
                LegacyRecord.outcome.in_(("imported", "merged")))))
        return bool(person.reasons) and all(reason == "disabled" for reason in person.reasons)

    def _alias(self, d: Decision, person: Person) -> None:
        folded = d.folded
        if folded is None or person.username == folded or folded in self.aliases:
            return
        self.aliases.add(folded)
        d.alias = folded

    def _phone(self, d: Decision, person: Person) -> None:
        index = d.record["phone_index"]
        if index is None:
            return
        holder = self.by_phone.get(index)
        if holder is None and self.carried[index] > 0:
            # People before carried it and none holds it: it is shared.
            d.conflicts.append(("shared_phone", None))
            self.counts.proposals += 1
            return
        if holder is None:
            # A legacy number is a claim, never proven: not usable for an
            # SMS login until its holder proves it (case M-MATCH-1).
            person.phone_index = index
            person.set("phone_number_enc", self.rt.pii.encrypt("phone", d.row.phone.value))
            person.set("phone_number_index", index)
            person.set("phone_number_verified", False)
            self.by_phone[index] = person
            self._provenance(d, person, "phone_number")
            return
        if holder is person:
            return
        same_name = d.row.name.value is not None and d.row.name.value == holder.name
        other_id = (holder.resident_id_index is not None
                    and holder.resident_id_index != d.record["resident_id_index"])
        d.conflicts.append(("phone_name" if same_name and not other_id else "shared_phone",
                            holder))
        self.counts.proposals += 1
        if holder.phone_index == index and not holder.phone_verified:
            # A second person claims a number nobody proved: neither holds
            # it (no login by it) until one of them proves it (M-MATCH-1).
            holder.phone_index = None
            holder.set("phone_number_enc", None)
            holder.set("phone_number_index", None)

    def _attributes(self, d: Decision, person: Person) -> None:
        """Field-level precedence: a higher ``trust`` wins, then the more
        recent row; a value the provider did not take from migration (the
        user's own, a registry's) is never replaced."""
        row = d.row
        offered = {"name": row.name.value, "email": _email(row.email)}
        observed = row.last_login_at or row.created_at
        for attribute in ATTRIBUTES:
            value = offered[attribute]
            if value is None or len(value) > LIMITS[attribute]:
                continue
            source = self._source(person, attribute)
            if getattr(person, attribute) is not None and source is None:
                continue
            if source is not None and not self._wins(source, observed):
                continue
            setattr(person, attribute, value)
            person.set(attribute, value)
            self._provenance(d, person, attribute)
        if d.record["resident_id_index"] is not None \
                and d.record["resident_id_index"] == person.resident_id_index \
                and person.verified_name is None \
                and self._source(person, "resident_id") is None:
            self._provenance(d, person, "resident_id")

    def _source(self, person: Person, attribute: str) -> dict | None:
        key = (id(person) if person.id is None else person.id, attribute)
        return self.new_provenance.get(key) or self.provenance.get(key)

    def _wins(self, source: dict, observed: datetime | None) -> bool:
        if self.f.rules.trust != source["trust"]:
            return self.f.rules.trust > source["trust"]
        return observed is not None and (source["observed_at"] is None
                                         or observed > source["observed_at"])

    def _provenance(self, d: Decision, person: Person, attribute: str) -> None:
        key = (id(person) if person.id is None else person.id, attribute)
        existing = self.provenance.get(key)
        self.new_provenance[key] = {
            "id": existing["id"] if existing else None, "person": person, "attribute": attribute,
            "decision": d, "trust": self.f.rules.trust,
            "observed_at": d.row.last_login_at or d.row.created_at}

    def _link(self, d: Decision, person: Person, *, credential: bool = True) -> None:
        row = d.row
        d.person = person
        if row.status == "disabled":
            d.record["reason"] = "disabled"
        if person.reasons is not None:
            person.reasons.append(d.record["reason"])
        d.legacy_link = True
        d.credential = (credential and row.password is not None and row.status == "active"
                        and (not person.has_password or person.holds_legacy))
        if d.credential:
            person.holds_legacy = True

    def _update(self, d: Decision) -> None:
        """A row folded before into an account, whose values changed: it
        follows them; who the row belongs to is not decided again
        (``idp migrate undo-merge`` splits a wrong merge)."""
        person = self.people[d.record["account_id"]]
        self.counts.updated += 1
        d.person = person
        d.legacy_link = True
        if d.row.status == "deleted":
            d.record["outcome"] = "tombstone"
        elif d.record["outcome"] == "tombstone":
            d.record["outcome"] = "merged"
        if d.row.status != "active":
            d.record["reason"] = "disabled" if d.row.status == "disabled" else None
            self._suspend_if_only(d, person)
            return
        if d.record["reason"] == "disabled":
            d.record["reason"] = None
        self._alias(d, person)
        # Confirmed as when first folded: the row made the account, an
        # operator merged it, or two names agree (never a reason that
        # status changes rewrite).
        known = person.verified_name or person.name
        confirmed = (d.record["outcome"] == "imported"
                     or (d.record["reason"] or "").startswith("review_")
                     or (d.row.name.value is not None and known is not None
                         and known == d.row.name.value))
        if confirmed:
            if person.status == "suspended" and self._suspended_by_migration(person):
                person.status = "active"
                person.set("status", "active")
            self._attributes(d, person)
        d.credential = (confirmed and d.row.password is not None
                        and (not person.has_password or person.holds_legacy))
        if d.credential:
            person.holds_legacy = True

    def _suspend_if_only(self, d: Decision, person: Person) -> None:
        """A row now disabled or deleted suspends the account it made when
        nothing else holds the account up: no password of its own and no
        other live legacy row."""
        if person.has_password or person.status != "active":
            return
        others = db.session.scalar(select(func.count()).select_from(LegacyRecord).where(
            LegacyRecord.account_id == person.id, LegacyRecord.id != d.record_id,
            LegacyRecord.outcome.in_(("imported", "merged")),
            or_(LegacyRecord.reason.is_(None), LegacyRecord.reason != "disabled")))
        if not others:
            person.status = "suspended"
            person.set("status", "suspended")

    # -- writes ---------------------------------------------------------------------

    def write(self) -> None:
        """Write what the chunk's rows gave, in a few bulk statements."""
        if not self.decisions:
            return
        self._write_accounts()
        self._write_records()
        self._write_links()
        self._write_provenance()
        conflicts = [{"record_id": d.record_id, "kind": kind,
                      "account_id": person.id if person is not None else None}
                     for d in self.decisions for kind, person in d.conflicts]
        if conflicts:
            bulk.add(MigrationConflict, conflicts)

    def _write_accounts(self) -> None:
        new = [p for p in dict.fromkeys(d.person for d in self.decisions
                                         if d.person is not None) if p.new]
        if new:
            now = utcnow()
            rows = [{"password_hash": None, "created_at": now, "updated_at": now, **p.values}
                    for p in new]
            ids = bulk.insert(Account, rows, Account.subject)
            for person in new:
                person.id = ids[person.values["subject"]]
                person.values = {}
        changed = [p for p in self.people.values() if p.changes]
        if changed:
            now = utcnow()
            db.session.execute(update(Account), [{"id": p.id, "updated_at": now, **p.changes}
                                                 for p in changed])
            for person in changed:
                mark_changed(db.session, person.id)

    def _write_records(self) -> None:
        for d in self.decisions:
            if d.person is not None:
                d.record["account_id"] = d.person.id
        new = [d for d in self.decisions if d.record_id is None]
        if new:
            ids = bulk.insert(LegacyRecord, [d.record for d in new], LegacyRecord.legacy_id_index,
                          LegacyRecord.department == self.department)
            for d in new:
                d.record_id = ids[d.legacy_index]
        known = [d for d in self.decisions if d.record["account_id"] is not None
                 and d.record_id is not None and d not in new]
        if known:
            db.session.execute(update(LegacyRecord), [{"id": d.record_id, **d.record}
                                                      for d in known])

    def _write_links(self) -> None:
        linked = [d for d in self.decisions if d.legacy_link]
        existing: dict[str, tuple[int, int]] = {}
        indexes = [d.legacy_index for d in linked]
        for part in bulk.parts(indexes):
            for link_id, account_id, index in db.session.execute(select(
                    IdentityLink.id, IdentityLink.account_id, IdentityLink.value_index).where(
                    IdentityLink.kind == "legacy", IdentityLink.issuer == self.department,
                    bulk.among(IdentityLink.value_index, part))):
                existing[index] = (link_id, account_id)
        fresh = [d for d in linked if d.legacy_index not in existing]
        if fresh:
            ids = bulk.insert(IdentityLink, [
                links.new_link_values(self.rt, d.person.id, "legacy", self.department,
                                      d.row.legacy_id) for d in fresh], IdentityLink.value_index,
                IdentityLink.kind == "legacy", IdentityLink.issuer == self.department)
            for d in fresh:
                d.link_id = ids[d.legacy_index]
        for d in linked:
            if d.link_id is None:
                d.link_id = existing[d.legacy_index][0]
                d.link_existed = True
        aliases = [links.new_link_values(self.rt, d.person.id, "alias", self.department,
                                         d.alias) for d in self.decisions
                   if d.alias is not None and d.person is not None]
        if aliases:
            bulk.add(IdentityLink, aliases)
        self._write_credentials(linked)

    def _write_credentials(self, linked: list[Decision]) -> None:
        # A link made before may hold the credential of the row's old
        # values: it goes, and the new one (if any) replaces it.
        replaced = [d.link_id for d in linked if d.link_existed]
        for part in bulk.parts(replaced):
            db.session.execute(delete(LegacyCredential).where(
                bulk.among(LegacyCredential.link_id, part)))
        kept = [d for d in linked if d.credential]
        if not kept:
            return
        bulk.add(LegacyCredential, [{
            "account_id": d.person.id, "link_id": d.link_id, "department": self.department,
            "scheme": self.f.scheme_text(d.row), "pepper_env": self.f.rules.pepper_env,
            "created_at": utcnow(),
            "secret_enc": self.rt.pii.encrypt(
                f"legacy_credential:{self.department}",
                json.dumps({"hash": d.row.password, "salt": d.row.salt,
                            "username": d.row.username}, ensure_ascii=False))}
            for d in kept])

    def _write_provenance(self) -> None:
        fresh, known = [], []
        for item in self.new_provenance.values():
            values = {"account_id": item["person"].id, "attribute": item["attribute"],
                      "record_id": item["decision"].record_id, "department": self.department,
                      "trust": item["trust"], "observed_at": item["observed_at"]}
            (known if item["id"] else fresh).append({"id": item["id"], **values}
                                                    if item["id"] else values)
        if fresh:
            bulk.add(AttributeProvenance, fresh)
        if known:
            db.session.execute(update(AttributeProvenance), known)


def fold_one(folder: Folder, row: LegacyRow, record: LegacyRecord, *, merge_into: int | None,
             claims: bool = True) -> Person:
    """Fold a held row as an operator decided (:mod:`migration.review`):
    into the account ``merge_into``, or, when None, as a new account
    (taking the row's ID number and login name only with ``claims``).
    Its record is rewritten; held data leaves it.

    :returns: the row's account.
    """
    chunk = _Chunk(folder)
    decision = Decision(row, record.legacy_id_index, record.digest, {}, record_id=record.id)
    chunk.add(decision, None)
    chunk.seen.add(record.legacy_id_index)
    chunk._read()
    if merge_into is not None:
        if merge_into not in chunk.people:
            chunk.people[merge_into] = _person(merge_into)
        chunk.merge(decision, chunk.people[merge_into])
        decision.record["outcome"] = "merged"
    else:
        chunk.new_account(decision, claims=claims)
        decision.record["outcome"] = "imported"
    chunk.write()
    return decision.person


#: The columns of an account a chunk reads (:func:`_person_of`).
_PERSON_COLUMNS = (Account.id, Account.username, Account.name, Account.email,
                   Account.verified_name, Account.resident_id_index,
                   Account.phone_number_index, Account.status, Account.password_hash,
                   Account.phone_number_verified)


def _person_of(row) -> Person:
    """The person of a row of :data:`_PERSON_COLUMNS` (whether it holds
    legacy hashes is read by the chunk, for all its people at once)."""
    return Person(row.id, row.username, row.name, row.email, row.verified_name,
                  row.resident_id_index, row.phone_number_index, row.status,
                  row.password_hash is not None, False, bool(row.phone_number_verified))


def _person(account_id: int) -> Person:
    person = _person_of(db.session.execute(select(*_PERSON_COLUMNS).where(
        Account.id == account_id)).one())
    person.holds_legacy = has_legacy_credentials(account_id)
    return person

