"""Fixtures of the fold's tests: the service-level application (no HTTP
server) and its runtime, as in tests/services, and small departments
written as CSV files with their mappings."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.integration.test_cli import cli_env  # noqa: F401  (fixture)
from tests.services.conftest import account, idp, rt  # noqa: F401  (fixtures)


@pytest.fixture
def department(tmp_path) -> Callable[..., Path]:
    """``department(code, rows, scheme=..., extra=...)`` writes ``rows``
    (dicts of the columns id, login, name, id_no, mobile, email, pwd, salt,
    status, create_time, last_login) as a UTF-8 CSV with a mapping of
    every column, and returns the mapping's path."""

    columns = ("id", "login", "name", "id_no", "mobile", "email", "pwd", "salt", "status",
               "create_time", "last_login")

    def write(code: str, rows: Sequence[dict], *, scheme: str = "md5(password)",
              trust: int = 50, extra: str = "") -> Path:
        folder = tmp_path / code
        folder.mkdir(exist_ok=True)
        with (folder / "users.csv").open("w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({column: row.get(column, "") for column in columns})
        mapping = folder / "mapping.toml"
        mapping.write_text(f'''
[department]
code = "{code}"
name = "Department {code}"

[source]
file = "users.csv"

[columns]
legacy_id = "id"
username = "login"
name = "name"
resident_id = "id_no"
phone = "mobile"
email = "email"
password = "pwd"
salt = "salt"
status = "status"
created_at = "create_time"
last_login_at = "last_login"

[password]
scheme = "{scheme}"

[status]
NORMAL = "active"
LOCKED = "disabled"
DELETED = "deleted"

[options]
trust = {trust}
{extra}
''', encoding="utf-8")
        return mapping

    return write
