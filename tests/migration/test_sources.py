"""Legacy sources (migration.sources): CSV files in GBK and in UTF-8 with a
byte-order mark (cases M-TXT-2, M-TXT-3), and real databases (SQLite,
MariaDB and PostgreSQL on this machine), streamed in batches, with their
columns checked against the mapping before any row is read."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
import sqlalchemy as sa

from migration.mapping import load_mapping
from migration.sources import SourceError, open_source, tell_encoding

HEADER = "id,real_name,id_no"


def _mapping(tmp_path, source: str, columns: str = 'legacy_id = "id"\nname = "real_name"\n'
             'resident_id = "id_no"'):
    path = tmp_path / "h.toml"
    path.write_text(f'[department]\ncode = "H"\nname = "Housing"\n[source]\n{source}\n'
                    f'[columns]\n{columns}\n', encoding="utf-8")
    return load_mapping(path, {})


def _csv(tmp_path, data: bytes, name: str = "users.csv"):
    (tmp_path / name).write_bytes(data)
    return _mapping(tmp_path, f'file = "{name}"')


def _rows(mapping, batch_rows: int = 1000):
    with open_source(mapping, batch_rows) as opened:
        return opened.encoding, [batch for batch in opened.batches]


def test_a_gbk_file_is_read_and_its_encoding_recorded(tmp_path):
    """M-TXT-2: GBK bytes (GB18030 holds GBK) are told from UTF-8."""
    data = f"{HEADER}\r\n1,张三,990101200001010014\r\n2,李四,990101200001010022\r\n"
    encoding, batches = _rows(_csv(tmp_path, data.encode("gbk")))
    assert encoding == "gb18030"
    assert batches == [[{"id": "1", "real_name": "张三", "id_no": "990101200001010014"},
                        {"id": "2", "real_name": "李四", "id_no": "990101200001010022"}]]


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    """M-TXT-3."""
    data = "\ufeffid_no,id,real_name\n990101200001010014,1,张三\n".encode()
    mapping = _csv(tmp_path, data)
    with open_source(mapping) as opened:
        assert opened.columns == ["id_no", "id", "real_name"] and opened.encoding == "utf-8"
        assert next(opened.batches)[0]["id_no"] == "990101200001010014"
    assert tell_encoding(tmp_path / "users.csv", "auto") == "utf-8-sig"


def test_plain_utf8_is_utf8(tmp_path):
    encoding, batches = _rows(_csv(tmp_path, f"{HEADER}\n1,张三,x\n".encode()))
    assert encoding == "utf-8" and batches[0][0]["real_name"] == "张三"


def test_undecodable_bytes_stop_the_read_naming_their_line(tmp_path):
    """M-TXT-2: never decoded with errors ignored. 0x80 0x20 is no GB18030."""
    lines = [HEADER.encode()] + [f"{n},name{n},x".encode() for n in range(1, 3000)]
    lines[2500] = b"2500,\x80 bad,x"
    (tmp_path / "users.csv").write_bytes(b"\n".join(lines) + b"\n")
    mapping = _mapping(tmp_path, 'file = "users.csv"\nencoding = "gbk"')
    with pytest.raises(SourceError, match=r"line 2501: bytes that are not gbk"):
        _rows(mapping)


def test_a_missing_column_stops_before_any_row_is_read(tmp_path):
    """M-TXT-3: all the missing columns are named."""
    mapping = _mapping(tmp_path, 'file = "users.csv"',
                       'legacy_id = "id"\nphone = "mobile"\nemail = "mail"')
    (tmp_path / "users.csv").write_bytes(f"{HEADER}\n1,a,b\n".encode())
    with pytest.raises(SourceError, match="missing column.s. mobile, mail"):
        with open_source(mapping):
            pass


def test_a_line_with_the_wrong_number_of_fields_names_its_line(tmp_path):
    with pytest.raises(SourceError, match="line 3: 2 fields where the header has 3"):
        _rows(_csv(tmp_path, f"{HEADER}\n1,a,b\n2,a\n".encode()))


def test_rows_come_in_batches(tmp_path):
    data = HEADER + "\n" + "".join(f"{n},n{n},x\n" for n in range(25))
    _encoding, batches = _rows(_csv(tmp_path, data.encode()), batch_rows=10)
    assert [len(batch) for batch in batches] == [10, 10, 5]


@pytest.fixture(params=["sqlite", "mariadb", "postgresql"])
def legacy_database(request, tmp_path):
    """A real legacy database with a ``sys_user`` table of 2,500 rows."""
    from bench.migration.synthetic import legacy_database

    with ExitStack() as stack:
        url = (f"sqlite:///{tmp_path / 'legacy.db'}" if request.param == "sqlite"
               else stack.enter_context(legacy_database(request.param)))
        engine = sa.create_engine(url)
        table = sa.Table("sys_user", sa.MetaData(),
                         sa.Column("id", sa.Integer, primary_key=True),
                         sa.Column("real_name", sa.String(32)), sa.Column("id_no", sa.String(18)))
        table.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"id": n, "real_name": f"张{n}", "id_no": f"{n:018d}"}
                                          for n in range(1, 2501)])
        engine.dispose()
        yield url


@pytest.mark.parametrize("select", ['table = "sys_user"',
                                    'query = "SELECT id, real_name, id_no FROM sys_user"'])
def test_a_database_table_is_streamed_in_batches(tmp_path, legacy_database, select):
    mapping = _mapping(tmp_path, f'url = "{legacy_database}"\n{select}')
    encoding, batches = _rows(mapping, batch_rows=1000)
    assert encoding is None
    assert [len(batch) for batch in batches] == [1000, 1000, 500]
    rows = sorted((row for batch in batches for row in batch), key=lambda row: row["id"])
    assert rows[0] == {"id": 1, "real_name": "张1", "id_no": "000000000000000001"}


def test_a_database_missing_a_column_or_unreachable_is_a_source_error(tmp_path,
                                                                     legacy_database):
    mapping = _mapping(tmp_path, f'url = "{legacy_database}"\ntable = "sys_user"',
                       'legacy_id = "id"\nphone = "mobile"')
    with pytest.raises(SourceError, match="missing column.s. mobile"), open_source(mapping):
        pass
    mapping = _mapping(tmp_path, f'url = "{legacy_database}"\ntable = "no_such_table"')
    with pytest.raises(SourceError), open_source(mapping):
        pass


def _workbook(path, rows, sheet="Sheet1"):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = sheet
    for row in rows:
        book.active.append(row)
    book.save(path)


def test_an_xlsx_file_is_read_as_text_and_numbers_never_through_float(tmp_path):
    """M-ID-3: a number cell is NumberCell text, rejected as an ID number
    whatever its digits; a text cell ending in 000 is flagged too."""
    from migration.cells import NumberCell
    from migration.normalise import SPREADSHEET_DAMAGE, phone, resident_id

    _workbook(tmp_path / "users.xlsx", [
        ["id", "real_name", "id_no", "mobile"],
        [1, "张三", "990101200001010014", 13900000001],
        [2, "李四", 990101200001010014, "13900000002"],
        [3, "王五", 9.90101e17, None],
        [None, None, None, None],
        [4, "赵六", "990101200001010000", None],
    ])
    mapping = _mapping(tmp_path, 'file = "users.xlsx"\nsheet = "Sheet1"',
                       'legacy_id = "id"\nresident_id = "id_no"\nphone = "mobile"')
    encoding, batches = _rows(mapping)
    rows = batches[0]
    assert encoding is None and len(rows) == 4
    assert rows[0] == {"id": "1", "real_name": "张三", "id_no": "990101200001010014",
                       "mobile": "13900000001"}
    assert isinstance(rows[0]["mobile"], NumberCell) and phone(rows[0]["mobile"]).value
    assert resident_id(rows[0]["id_no"], spreadsheet=True).value == "990101200001010014"
    assert rows[2]["id_no"] == "990101000000000000"
    for row in rows[1:]:
        assert resident_id(row["id_no"], spreadsheet=True).problem == SPREADSHEET_DAMAGE


def test_an_xlsx_file_without_the_sheet_or_broken_is_a_source_error(tmp_path):
    _workbook(tmp_path / "users.xlsx", [["id"], [1]])
    mapping = _mapping(tmp_path, 'file = "users.xlsx"\nsheet = "Users"', 'legacy_id = "id"')
    with pytest.raises(SourceError, match="has no sheet 'Users' .it has Sheet1."):
        _rows(mapping)
    (tmp_path / "broken.xlsx").write_bytes(b"not a zip")
    mapping = _mapping(tmp_path, 'file = "broken.xlsx"', 'legacy_id = "id"')
    with pytest.raises(SourceError, match="is not a readable XLSX file"):
        _rows(mapping)
