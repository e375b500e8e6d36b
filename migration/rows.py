"""One legacy row read through its mapping: values as text, normalised
identifiers, the status the most restrictive reading gives, timestamps in
UTC (docs/migration.md, "The fold")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from migration import normalise
from migration.mapping import Mapping
from migration.normalise import Value

#: ``enabled`` values read as yes and no (case-insensitive); any other
#: value stops the run, like an unknown status.
ENABLED = frozenset({"1", "true", "t", "y", "yes", "enabled", "on"})
DISABLED = frozenset({"0", "false", "f", "n", "no", "disabled", "off"})
#: Text forms of legacy timestamps that are not ISO 8601, tried in order.
TIMESTAMP_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d", "%Y%m%d%H%M%S", "%Y%m%d")
#: The provider fields whose raw text is kept for the audit record (the
#: password and salt are kept in the legacy credential only).
AUDITED = ("legacy_id", "username", "name", "resident_id", "phone", "email", "status",
           "enabled", "created_at", "last_login_at")
_EPOCH = datetime(1970, 1, 1)


class RowError(ValueError):
    """A row the mapping cannot read (an unknown status or ``enabled``
    value): it stops the plan or run, with the row's number."""


@dataclass(frozen=True)
class LegacyRow:
    """A source row, read.

    :ivar number: the row's place in the source, from 1 (a file's header
        line not counted).
    :ivar legacy_id: the legacy user id as text, stripped; None when empty.
    :ivar username: the exact legacy login name (schemes that mix it in
        use it so), or None.
    :ivar status: ``active``, ``disabled`` or ``deleted``: the most
        restrictive of the status and ``enabled`` columns.
    :ivar password: the stored hash as text (a binary column as ``0x`` and
        upper-case hex), or None; ``salt`` likewise.
    :ivar scheme: the row's scheme name when the mapping has
        ``scheme_column``, else ``""``.
    :ivar created_at: naive UTC, or None (also for zero dates and the epoch).
    :ivar raw: :data:`AUDITED` field -> the value as text, or None.
    :ivar defect: why the row cannot be folded at all (``nul_character``),
        or None.
    """

    number: int
    legacy_id: str | None
    username: str | None
    name: Value
    resident_id: Value
    phone: Value
    email: str | None
    password: str | None
    salt: str | None
    scheme: str
    status: str
    created_at: datetime | None
    last_login_at: datetime | None
    raw: dict[str, str | None]
    defect: str | None = None


def text(value: Any) -> str | None:
    """A source value as text: None and empty or blank text as None; bytes
    (a binary column) as ``0x`` and upper-case hex unless they are ASCII."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        if data.isascii() and data.decode("ascii").isprintable():
            return data.decode("ascii") or None
        return "0x" + data.hex().upper()
    result = str(value)
    return result if result.strip() else None


def utc(value: Any, zone) -> datetime | None:
    """A legacy timestamp as naive UTC. Naive values are read in ``zone``
    (the mapping's ``timezone``); zero dates (``0000-00-00 00:00:00``) and
    the epoch (also written as local time, ``1970-01-01 08:00:00`` in
    Shanghai) are None: they say the system never knew. A value that is no
    timestamp is None too.

    :param zone: a :class:`zoneinfo.ZoneInfo`.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        raw = str(value).strip()
        if not raw or raw.startswith("0000-00-00"):
            return None
        try:
            # ISO 8601, with a space or a T: the common case, parsed in C.
            moment = datetime.fromisoformat(raw)
        except ValueError:
            for layout in TIMESTAMP_FORMATS:
                try:
                    moment = datetime.strptime(raw, layout)
                    break
                except ValueError:
                    continue
            else:
                return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    try:
        result = moment.astimezone(UTC).replace(tzinfo=None)
    except (OverflowError, ValueError):
        # 0001-01-01 (.NET and Java MinValue) is before any offset can apply.
        return None
    return None if result <= _EPOCH else result


def _enabled(value: str | None, number: int, column: str) -> bool | None:
    if value is None:
        return None
    if value.startswith("0x"):
        try:
            return int(value, 16) != 0
        except ValueError:
            pass
    folded = value.strip().casefold()
    if folded in ENABLED:
        return True
    if folded in DISABLED:
        return False
    raise RowError(f"row {number}: columns.enabled ({column}): unknown value {value!r}; "
                   "a yes is 1, true, t, y, yes, enabled or on, a no their opposites")


def _status(mapping: Mapping, value: str | None, enabled: bool | None, number: int) -> str:
    meaning = "active"
    if "status" in mapping.columns:
        if value is None or value not in mapping.statuses:
            raise RowError(f"row {number}: columns.status ({mapping.columns['status']}): "
                           f"unknown value {value!r}; map it in [status] to active, disabled "
                           "or deleted")
        meaning = mapping.statuses[value]
    # The most restrictive reading wins (case M-MATCH-4): a deleted row
    # stays deleted whatever ``enabled`` says.
    if meaning == "active" and enabled is False:
        return "disabled"
    return meaning


def read_row(mapping: Mapping, row: dict[str, Any], number: int, *,
             spreadsheet: bool = False) -> LegacyRow:
    """Read the source row ``row`` (column -> value) through ``mapping``.

    :param spreadsheet: the row came from an XLSX file (ID numbers are
        checked for Excel's damage, case M-ID-3).
    :raises RowError: an unknown status or ``enabled`` value.
    """
    columns = mapping.columns
    values = {field: text(row.get(column)) for field, column in columns.items()}
    enabled = _enabled(values.get("enabled"), number, columns.get("enabled", ""))
    rules = mapping.password
    scheme = ""
    if rules is not None and rules.scheme_column is not None:
        scheme = text(row.get(rules.scheme_column)) or ""
    return build_row(
        values, number=number, scheme=scheme,
        status=_status(mapping, values.get("status"), enabled, number),
        created_at=utc(row.get(columns["created_at"]) if "created_at" in columns else None,
                       mapping.timezone),
        last_login_at=utc(row.get(columns["last_login_at"])
                          if "last_login_at" in columns else None, mapping.timezone),
        resident_id=row.get(columns["resident_id"]) if "resident_id" in columns else None,
        spreadsheet=spreadsheet)


def build_row(values: dict[str, str | None], *, status: str, created_at: datetime | None,
              last_login_at: datetime | None, number: int = 0, scheme: str = "",
              resident_id: Any = None, spreadsheet: bool = False) -> LegacyRow:
    """A row from its values as text (provider field -> text or None: a
    mapped source row, a held record's audit values, a department's
    answer), normalised by the fold's one set of rules.

    :param status: ``active``, ``disabled`` or ``deleted``, already read.
    :param created_at: the legacy timestamps, naive UTC, already read.
    :param resident_id: the ID number's cell as the source held it (a
        spreadsheet's number cell is damage whatever its digits say), when
        it is more than ``values["resident_id"]``.
    """
    legacy_id, email = values.get("legacy_id"), values.get("email")
    return LegacyRow(
        number=number,
        legacy_id=legacy_id.strip() if legacy_id else None,
        username=values.get("username"),
        name=normalise.name(values.get("name")),
        resident_id=normalise.resident_id(resident_id if resident_id is not None
                                          else values.get("resident_id"),
                                          spreadsheet=spreadsheet),
        phone=normalise.phone(values.get("phone")),
        email=email.strip() if email else None,
        password=values.get("password"),
        salt=values.get("salt"),
        scheme=scheme,
        status=status,
        created_at=created_at,
        last_login_at=last_login_at,
        raw={field: values.get(field) for field in AUDITED if field in values},
        # A NUL byte no database text column holds: the row is rejected.
        defect="nul_character" if any("\x00" in value for value in values.values()
                                      if value is not None) else None,
    )
