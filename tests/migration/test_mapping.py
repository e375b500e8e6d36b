"""Mapping files (migration.mapping): the contract's keys are read, and
every mistake an operator makes stops the load with a message naming the
file, the key and the problem (case M-PW-2 for known answers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration.mapping import MappingError, load_mapping
from tests.helpers import CHECKOUT

EXAMPLE = Path(CHECKOUT) / "config" / "migration" / "example.toml"
PEPPER = {"LEGACY_H_PEPPER": "pepper-secret"}

MINIMAL = '''
[department]
code = "H"
name = "Housing bureau"
[source]
url = "sqlite:///legacy.db"
table = "sys_user"
[columns]
legacy_id = "id"
'''


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "h.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_in_config_is_a_valid_mapping():
    mapping = load_mapping(EXAMPLE, PEPPER)
    assert (mapping.code, mapping.name, mapping.trust) == ("H", "Housing bureau", 50)
    assert mapping.source.url.startswith("mysql+pymysql://")
    assert mapping.source.query == "SELECT * FROM sys_user"
    assert mapping.columns["legacy_id"] == "id" and mapping.columns["password"] == "pwd"
    assert mapping.statuses == {"NORMAL": "active", "LOCKED": "disabled", "DELETED": "deleted"}
    assert str(mapping.timezone) == "Asia/Shanghai"
    assert mapping.password.pepper == "pepper-secret"
    assert mapping.password.scheme.verify("test123", "CC03E747A6AFBBCBF8BE7668ACFEBEE5", {})


def test_a_minimal_mapping_takes_the_defaults(tmp_path):
    mapping = load_mapping(_write(tmp_path, MINIMAL), {})
    assert mapping.password is None and mapping.statuses == {}
    assert (str(mapping.timezone), mapping.trust) == ("Asia/Shanghai", 50)


def test_a_file_source_is_found_beside_the_mapping(tmp_path):
    text = MINIMAL.replace('url = "sqlite:///legacy.db"\ntable = "sys_user"',
                           'file = "users.csv"\nencoding = "GBK"')
    mapping = load_mapping(_write(tmp_path, text), {})
    assert mapping.source.file == (tmp_path / "users.csv").resolve()
    assert mapping.source.encoding == "gbk"


def test_per_row_schemes(tmp_path):
    text = MINIMAL.replace('legacy_id = "id"', 'legacy_id = "id"\npassword = "pwd"\n'
                           'salt = "salt"') + '''
[password]
scheme_column = "scheme"
[password.schemes]
legacy_md5 = "md5(password)"
ucenter = "md5(md5(password) + salt)"
'''
    rules = load_mapping(_write(tmp_path, text), {}).password
    assert rules.scheme is None and rules.scheme_column == "scheme"
    assert set(rules.schemes) == {"legacy_md5", "ucenter"}
    assert rules.schemes["ucenter"].verify(
        "test123", "a071724cdc70c37efd8b78d3c2395016", {"salt": "a1b2c3"}) == "utf-8"


def test_a_salted_known_answer_gives_its_salt(tmp_path):
    text = MINIMAL.replace('legacy_id = "id"', 'legacy_id = "id"\npassword = "pwd"\n'
                           'salt = "salt"') + '''
[password]
scheme = "md5(md5(password) + salt)"
known_answer = ["test123", "a071724cdc70c37efd8b78d3c2395016", "a1b2c3"]
'''
    assert load_mapping(_write(tmp_path, text), {}).password.scheme is not None


PASSWORD_COLUMNS = MINIMAL.replace('legacy_id = "id"', 'legacy_id = "id"\npassword = "pwd"')


@pytest.mark.parametrize(("text", "key", "problem"), [
    ("[department\n", None, "is not valid TOML"),
    (MINIMAL + "[extra]\n", "extra", "unknown table"),
    (MINIMAL.replace('name = "Housing bureau"', 'name = "H"\nnmae = "x"'), "department.nmae",
     "unknown key"),
    (MINIMAL.replace('code = "H"\n', ""), "department.code", "is required"),
    (MINIMAL.replace('code = "H"', 'code = "H B"'), "department.code", "letters, digits"),
    (MINIMAL.replace('code = "H"', "code = 7"), "department.code", "must be non-empty text"),
    (MINIMAL.replace('legacy_id = "id"', 'username = "u"'), "columns.legacy_id", "is required"),
    (MINIMAL.replace('table = "sys_user"', 'table = "t"\nfile = "u.csv"'), "source",
     "exactly one of url and file"),
    (MINIMAL.replace('table = "sys_user"', ""), "source", "exactly one of query and table"),
    (MINIMAL.replace('table = "sys_user"', 'table = "t"\nsheet = "S"'), "source.sheet",
     "file source only"),
    (MINIMAL.replace('url = "sqlite:///legacy.db"\ntable = "sys_user"', 'file = "u.txt"'),
     "source.file", "must be a .csv or .xlsx file"),
    (MINIMAL.replace('url = "sqlite:///legacy.db"\ntable = "sys_user"',
                     'file = "u.csv"\nencoding = "latin-1"'), "source.encoding", "must be one of"),
    (MINIMAL.replace('url = "sqlite:///legacy.db"\ntable = "sys_user"',
                     'file = "u.csv"\nsheet = "S"'), "source.sheet", "XLSX file only"),
    (MINIMAL + '[status]\nNORMAL = "enabled"\n', "status.NORMAL", "must be one of active"),
    (MINIMAL.replace('legacy_id = "id"', 'legacy_id = "id"\nstatus = "st"'), "status",
     "map each legacy value"),
    (MINIMAL + '[options]\ntimezone = "Mars/Olympus"\n', "options.timezone",
     "unknown time zone"),
    (MINIMAL + "[options]\ntrust = 101\n", "options.trust", "from 0 to 100"),
    (MINIMAL + "[options]\ntrust = true\n", "options.trust", "from 0 to 100"),
    (PASSWORD_COLUMNS, "password", "name its scheme"),
    (MINIMAL + '[password]\nscheme = "md5(password)"\n', "columns.password", "is required"),
    (PASSWORD_COLUMNS + '[password]\nscheme = "md5(pasword)"\n', "password.scheme",
     "unknown name 'pasword' at position 5"),
    (PASSWORD_COLUMNS + '[password]\nscheme = "md5(password + salt)"\n', "password.scheme",
     "reads salt: map columns.salt"),
    (PASSWORD_COLUMNS + '[password]\nscheme = "md5(pepper + password)"\n', "password.scheme",
     "reads pepper: set password.pepper_env"),
    (PASSWORD_COLUMNS + '[password]\nscheme = "md5(password)"\npepper_env = "NO_SUCH_PEPPER"\n',
     "password.pepper_env", "NO_SUCH_PEPPER is not set"),
    (PASSWORD_COLUMNS + '[password]\nscheme = "md5(password)"\nscheme_column = "s"\n',
     "password", "exactly one of scheme and scheme_column"),
    (PASSWORD_COLUMNS + '[password]\nscheme_column = "s"\n', "password.schemes",
     "is required with scheme_column"),
    (PASSWORD_COLUMNS + '[password]\nscheme = "md5(password)"\n'
     'known_answer = ["test123", "cc03e747a6afbbcbf8be7668acfebee6"]\n',
     "password.known_answer", "does not turn the known password into the known hash"),
    (PASSWORD_COLUMNS + '[password]\nscheme = "md5(password)"\nknown_answer = "test123"\n',
     "password.known_answer", "must be [password, stored hash]"),
    (PASSWORD_COLUMNS.replace('password = "pwd"', 'password = "pwd"\nsalt = "s"')
     + '[password]\nscheme = "md5(md5(password) + salt)"\n'
     'known_answer = ["test123", "a071724cdc70c37efd8b78d3c2395016"]\n',
     "password.known_answer", "give them after the hash"),
])
def test_each_mistake_stops_the_load_naming_it(tmp_path, text, key, problem):
    path = _write(tmp_path, text)
    with pytest.raises(MappingError) as raised:
        load_mapping(path, {})
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and problem in message
    if key is not None:
        assert f": {key}: " in message


def test_a_missing_file_is_a_mapping_error(tmp_path):
    with pytest.raises(MappingError, match="cannot be read"):
        load_mapping(tmp_path / "absent.toml", {})
