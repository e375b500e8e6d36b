"""Mapping files: how one department's legacy user table maps onto the
provider's accounts (``config/migration/*.toml``, docs/migration.md).

The key names are a public contract that operators write and tests hold;
:func:`load_mapping` reads a file, refuses anything it does not know and
everything it cannot use, each with a message naming the file, the key and
the problem, and gives a :class:`Mapping`. What needs the source itself
(its columns, its rows) is checked when a plan reads it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping as AnyMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from migration.hashes import Scheme, SchemeError, scheme_for

#: Keys of each table, and the tables themselves.
TABLES: dict[str, frozenset[str]] = {
    "department": frozenset({"code", "name"}),
    "source": frozenset({"url", "query", "table", "file", "encoding", "sheet"}),
    "columns": frozenset({"legacy_id", "username", "name", "resident_id", "phone", "email",
                          "password", "salt", "status", "enabled", "created_at",
                          "last_login_at"}),
    "password": frozenset({"scheme", "scheme_column", "pepper_env", "known_answer",
                           "schemes"}),
    "status": frozenset(),  # any legacy value
    "options": frozenset({"timezone", "trust"}),
}
#: What a legacy status may mean.
STATUSES = frozenset({"active", "disabled", "deleted"})
#: Encodings a CSV source may be read in.
ENCODINGS = frozenset({"auto", "utf-8", "gbk", "gb18030"})
#: A department code: short, used in legacy links and claims.
CODE = re.compile(r"[A-Za-z0-9_-]{1,16}")
#: Precedence of a department's attributes in merges.
TRUST_RANGE = range(0, 101)


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names the file, the
    key and the problem."""


@dataclass(frozen=True)
class Source:
    """Where the rows come from: exactly one of ``url`` (a SQLAlchemy URL,
    with ``query`` or ``table``) and ``file`` (CSV or XLSX)."""

    url: str | None = None
    query: str | None = None
    table: str | None = None
    file: Path | None = None
    encoding: str = "auto"
    sheet: str | None = None


@dataclass(frozen=True)
class PasswordRules:
    """How the department stored passwords.

    :ivar scheme: the one scheme of every row, or None with ``scheme_column``.
    :ivar schemes: per-row scheme name -> scheme, with ``scheme_column``.
    :ivar pepper: the secret read from ``pepper_env``, or None.
    :ivar texts: scheme name -> the scheme as the mapping wrote it, the one
        scheme under ``""``: what a legacy credential keeps.
    :ivar pepper_env: the environment variable of the pepper, or None.
    """

    scheme: Scheme | None = None
    scheme_column: str | None = None
    schemes: dict[str, Scheme] = field(default_factory=dict)
    pepper: str | None = field(default=None, repr=False)
    texts: dict[str, str] = field(default_factory=dict)
    pepper_env: str | None = None


@dataclass(frozen=True)
class Mapping:
    """One department's mapping, checked (:func:`load_mapping`).

    :ivar columns: provider field -> source column.
    :ivar statuses: legacy status value -> ``active``, ``disabled`` or ``deleted``.
    :ivar timezone: the zone of the source's naive timestamps.
    :ivar trust: the precedence of this department's attributes (0-100).
    """

    path: Path
    code: str
    name: str
    source: Source
    columns: dict[str, str]
    password: PasswordRules | None
    statuses: dict[str, str]
    timezone: ZoneInfo
    trust: int


def load_mapping(path: str | Path, environ: AnyMapping[str, str] | None = None) -> Mapping:
    """Read and check the mapping file ``path``.

    :param environ: where ``pepper_env`` is read (default: ``os.environ``).
    :raises MappingError: an unreadable or malformed file, an unknown table
        or key, a missing required key, a value of the wrong kind, a
        scheme that does not parse, a missing pepper, a failing
        ``known_answer``, a status mapped to something else than
        ``active``/``disabled``/``deleted``.
    """
    path = Path(path)
    environ = os.environ if environ is None else environ
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise MappingError(f"{path}: is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: is not valid TOML: {exc}") from None
    where = _Where(path)
    unknown = sorted(set(data) - set(TABLES))
    if unknown:
        raise where.error(unknown[0], f"unknown table (known: {', '.join(TABLES)})")
    for table, keys in TABLES.items():
        value = data.get(table, {})
        if not isinstance(value, dict):
            raise where.error(table, "must be a table")
        extra = sorted(set(value) - keys) if keys else []
        if extra:
            raise where.error(f"{table}.{extra[0]}",
                              f"unknown key (known: {', '.join(sorted(keys))})")
    department = data.get("department", {})
    code = where.text(department, "department.code", required=True)
    if not CODE.fullmatch(code):
        raise where.error("department.code", "must be 1-16 letters, digits, '_' or '-'")
    name = where.text(department, "department.name", required=True)
    columns = {key: where.text(data.get("columns", {}), f"columns.{key}")
               for key in data.get("columns", {})}
    if "legacy_id" not in columns:
        raise where.error("columns.legacy_id", "is required")
    password = _password_rules(where, data.get("password", {}), columns, environ)
    statuses = {}
    for legacy, meaning in data.get("status", {}).items():
        if not isinstance(meaning, str) or meaning not in STATUSES:
            raise where.error(f"status.{legacy}",
                              f"must be one of {', '.join(sorted(STATUSES))}, not {meaning!r}")
        statuses[legacy] = meaning
    if "status" in columns and not statuses:
        raise where.error("status", "is needed to read columns.status: map each legacy value")
    options = data.get("options", {})
    zone = where.text(options, "options.timezone") or "Asia/Shanghai"
    try:
        timezone = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise where.error("options.timezone", f"unknown time zone {zone!r}") from None
    trust = options.get("trust", 50)
    if not isinstance(trust, int) or isinstance(trust, bool) or trust not in TRUST_RANGE:
        raise where.error("options.trust", "must be a whole number from 0 to 100")
    return Mapping(path=path, code=code, name=name,
                   source=_source(where, data.get("source", {}), path), columns=columns,
                   password=password, statuses=statuses, timezone=timezone, trust=trust)


class _Where:
    """Messages naming the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, key: str, problem: str) -> MappingError:
        return MappingError(f"{self.path}: {key}: {problem}")

    def text(self, table: dict, key: str, *, required: bool = False) -> str | None:
        value = table.get(key.rsplit(".", 1)[-1])
        if value is None:
            if required:
                raise self.error(key, "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, "must be non-empty text")
        return value.strip()


def _source(where: _Where, table: dict, path: Path) -> Source:
    url = where.text(table, "source.url")
    file = where.text(table, "source.file")
    if (url is None) == (file is None):
        raise where.error("source", "needs exactly one of url and file")
    if url is not None:
        query, name = where.text(table, "source.query"), where.text(table, "source.table")
        if (query is None) == (name is None):
            raise where.error("source", "a url needs exactly one of query and table")
        for key in ("encoding", "sheet"):
            if key in table:
                raise where.error(f"source.{key}", "applies to a file source only")
        return Source(url=url, query=query, table=name)
    for key in ("query", "table"):
        if key in table:
            raise where.error(f"source.{key}", "applies to a url source only")
    located = (path.parent / file).resolve()
    suffix = located.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise where.error("source.file", "must be a .csv or .xlsx file")
    encoding = (where.text(table, "source.encoding") or "auto").lower()
    if encoding not in ENCODINGS:
        raise where.error("source.encoding", f"must be one of {', '.join(sorted(ENCODINGS))}")
    if suffix == ".xlsx" and "encoding" in table:
        raise where.error("source.encoding", "applies to a CSV file only")
    sheet = where.text(table, "source.sheet")
    if sheet is not None and suffix != ".xlsx":
        raise where.error("source.sheet", "applies to an XLSX file only")
    return Source(file=located, encoding=encoding, sheet=sheet)


def _password_rules(where: _Where, table: dict, columns: dict[str, str],
                    environ: AnyMapping[str, str]) -> PasswordRules | None:
    if not table:
        if "password" in columns:
            raise where.error("password", "is needed to read columns.password: name its scheme")
        return None
    if "password" not in columns:
        raise where.error("columns.password", "is required with a [password] table")
    scheme_text = table.get("scheme")
    scheme_column = where.text(table, "password.scheme_column")
    if (scheme_text is None) == (scheme_column is None):
        raise where.error("password", "needs exactly one of scheme and scheme_column")
    pepper_env = where.text(table, "password.pepper_env")
    pepper = None
    if pepper_env is not None:
        pepper = environ.get(pepper_env)
        if not pepper:
            raise where.error("password.pepper_env",
                              f"the environment variable {pepper_env} is not set")
    if scheme_column is not None:
        named = table.get("schemes")
        if not isinstance(named, dict) or not named:
            raise where.error("password.schemes", "is required with scheme_column")
        schemes = {name: _scheme(where, f"password.schemes.{name}", text, columns, pepper)
                   for name, text in named.items()}
        if "known_answer" in table:
            raise where.error("password.known_answer", "needs a single scheme")
        return PasswordRules(scheme_column=scheme_column, schemes=schemes, pepper=pepper,
                             texts={name: text.strip() for name, text in named.items()},
                             pepper_env=pepper_env)
    if "schemes" in table:
        raise where.error("password.schemes", "applies with scheme_column only")
    scheme = _scheme(where, "password.scheme", scheme_text, columns, pepper)
    if "known_answer" in table:
        _check_known_answer(where, table["known_answer"], scheme, pepper)
    return PasswordRules(scheme=scheme, pepper=pepper, texts={"": scheme_text.strip()},
                         pepper_env=pepper_env)


def _scheme(where: _Where, key: str, text: Any, columns: dict[str, str],
            pepper: str | None) -> Scheme:
    if not isinstance(text, str) or not text.strip():
        raise where.error(key, "must be non-empty text")
    try:
        scheme = scheme_for(text)
    except SchemeError as exc:
        raise where.error(key, str(exc)) from None
    for needed in sorted(scheme.fields - {"password"}):
        if needed == "pepper" and pepper is None:
            raise where.error(key, "reads pepper: set password.pepper_env")
        if needed in ("salt", "username") and needed not in columns:
            raise where.error(key, f"reads {needed}: map columns.{needed}")
    return scheme


def _check_known_answer(where: _Where, answer: Any, scheme: Scheme, pepper: str | None) -> None:
    """``known_answer = [password, stored hash]``, with the row's salt and
    username after them when the scheme reads them (case M-PW-2)."""
    key = "password.known_answer"
    if (not isinstance(answer, list) or not 2 <= len(answer) <= 4
            or not all(isinstance(item, str) for item in answer)):
        raise where.error(key, "must be [password, stored hash] (then salt, username)")
    values = {"salt": answer[2] if len(answer) > 2 else None,
              "username": answer[3] if len(answer) > 3 else None, "pepper": pepper}
    try:
        matched = scheme.verify(answer[0], answer[1], values)
    except SchemeError:
        raise where.error(key, "the scheme reads a salt or username: give them after the "
                               "hash, [password, hash, salt, username]") from None
    if matched is None:
        raise where.error(key, "the scheme does not turn the known password into the known "
                               "hash: check the salt's place, hex against bytes, the case")
