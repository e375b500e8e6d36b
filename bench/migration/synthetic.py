"""A deterministic generator of legacy user tables: the same synthetic
people in several departments, each department with its own columns,
password scheme and statuses, and every failure mode of
docs/migration.md (15-digit and full-width ID numbers, wrong check
characters, placeholders, shared phones, login names equal but for case,
two rows of one person in one department, the same ID number under
another name, deleted-but-enabled rows, zero dates and the local epoch).

Used by the tests (a few hundred people) and by ``bench/migration/run.py``
(a million rows). Slow hashes (bcrypt, PBKDF2) are made once per password
of a small pool, so a million rows are generated in seconds.
"""

from __future__ import annotations

import base64
import hashlib
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import bcrypt
import sqlalchemy as sa

from connectors.identifiers import id_check_character

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
            "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
            "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
GIVEN = ("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红鹏辉建华飞鑫波斌宇"
         "浩凯健俊帆帅旭宁龙林欣佳雪琳晨阳")
#: Passwords of the pool (slow hashes are made once per entry).
POOL = [f"Legacy-pass-{n:02d}" for n in range(16)]
#: The share of rows with each failure mode, per department.
FAULT_RATE = 0.004


@dataclass
class Person:
    name: str
    resident_id: str
    phone: str
    password: str


@dataclass
class DepartmentSpec:
    """One department's legacy system.

    :ivar scheme: the mapping's scheme.
    :ivar columns: provider field -> the table's column.
    """

    code: str
    table: str
    scheme: str
    trust: int
    columns: dict[str, str]
    statuses: dict[str, str]
    share: float
    salted: bool = False
    cache: dict = field(default_factory=dict)

    def hash(self, password: str, salt: str, username: str) -> str:
        if self.scheme == "md5(password)":
            return hashlib.md5(password.encode()).hexdigest()
        if self.scheme == "md5(md5(password) + salt)":
            inner = hashlib.md5(password.encode()).hexdigest()
            return hashlib.md5((inner + salt).encode()).hexdigest()
        if self.scheme == "upper(sha256(password))":
            return hashlib.sha256(password.encode()).hexdigest().upper()
        if self.scheme == "bcrypt":
            if password not in self.cache:
                self.cache[password] = bcrypt.hashpw(password.encode(),
                                                     bcrypt.gensalt(4, b"2a")).decode()
            return self.cache[password]
        if self.scheme == "django_pbkdf2_sha256":
            if password not in self.cache:
                salt_text = "saltsalt" + password[-2:]
                digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt_text.encode(), 1000)
                self.cache[password] = ("pbkdf2_sha256$1000$" + salt_text + "$"
                                        + base64.b64encode(digest).decode())
            return self.cache[password]
        raise ValueError(self.scheme)


def departments() -> list[DepartmentSpec]:
    """The five departments: Java, PHP and .NET systems' own habits."""
    return [
        DepartmentSpec("HS", "sys_user", "md5(password)", 60, {
            "legacy_id": "user_id", "username": "login_name", "name": "user_name",
            "resident_id": "id_card", "phone": "phonenumber", "password": "password",
            "status": "del_flag", "created_at": "create_time", "last_login_at": "login_date"},
            {"0": "active", "1": "disabled", "2": "deleted"}, 0.25),
        DepartmentSpec("CA", "uc_members", "md5(md5(password) + salt)", 50, {
            "legacy_id": "uid", "username": "username", "name": "realname",
            "resident_id": "idcard", "phone": "mobile", "password": "password",
            "salt": "salt", "created_at": "regdate", "last_login_at": "lastlogintime"},
            {}, 0.2, salted=True),
        DepartmentSpec("HR", "t_user", "bcrypt", 70, {
            "legacy_id": "id", "username": "account", "name": "name",
            "resident_id": "sfzh", "phone": "sjh", "password": "pwd", "status": "state",
            "enabled": "enabled", "created_at": "gmt_create"},
            {"NORMAL": "active", "LOCKED": "disabled", "DELETED": "deleted"}, 0.12),
        DepartmentSpec("ED", "AspNetUsers", "upper(sha256(password))", 40, {
            "legacy_id": "Id", "username": "UserName", "name": "FullName",
            "resident_id": "IdNumber", "phone": "PhoneNumber", "password": "PasswordHash",
            "created_at": "CreatedOn"}, {}, 0.15),
        DepartmentSpec("TR", "auth_user", "django_pbkdf2_sha256", 30, {
            "legacy_id": "id", "username": "username", "name": "first_name",
            "resident_id": "id_number", "phone": "mobile", "password": "password",
            "enabled": "is_active", "created_at": "date_joined",
            "last_login_at": "last_login"}, {}, 0.12),
    ]


def _resident_id(rng: random.Random, index: int) -> str:
    year = 1950 + index % 55
    first17 = f"990101{year}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{index % 1000:03d}"
    return first17 + id_check_character(first17)


def people(count: int, seed: int = 7) -> list[Person]:
    """``count`` distinct people with valid ID numbers and phones."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out = []
    while len(out) < count:
        number = _resident_id(rng, len(out) + rng.randint(0, 999_999) * 1000)
        if number in seen:
            continue
        seen.add(number)
        name = rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN)
                                                          if rng.random() < 0.6 else "")
        out.append(Person(name, number, f"139{len(out):08d}", rng.choice(POOL)))
    return out


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in text)


def rows(spec: DepartmentSpec, crowd: list[Person], seed: int = 7,
         fault_rate: float = FAULT_RATE) -> Iterator[dict]:
    """The department's rows (column -> value), people in crowd order, with
    its share of them and ``fault_rate`` of its rows with each failure mode."""
    rng = random.Random(f"{seed}:{spec.code}")
    cols = spec.columns
    number = 0
    for index, person in enumerate(crowd):
        if rng.random() >= spec.share:
            continue
        number += 1
        login = f"{spec.code.lower()}{index}"
        salt = f"{rng.randrange(16**6):06x}" if spec.salted else None
        ident, phone, name, status = person.resident_id, person.phone, person.name, "active"
        enabled, created, last = True, "2015-06-01 09:30:00", "2024-01-02 08:15:00"
        fault = rng.random() / fault_rate
        if fault < 1:
            ident = ident[:6] + ident[8:17]                    # 15 digits
        elif fault < 2:
            ident = _full_width(ident)
        elif fault < 3:
            ident = ident[:17] + ("0" if ident[17] != "0" else "1")   # wrong check
        elif fault < 4:
            ident, phone = "000000000000000000", "13800000000"         # placeholders
        elif fault < 5:
            phone = crowd[(index + 1) % len(crowd)].phone              # shared phone
        elif fault < 6:
            login = login.upper()                                      # case twin below
        elif fault < 7:
            name = name[::-1] + "某"                                    # other name, same ID
        elif fault < 8:
            status, enabled = "deleted", True
        elif fault < 9:
            status = "disabled"
        elif fault < 10:
            created, last = "0000-00-00 00:00:00", "1970-01-01 08:00:00"
        meanings = {v: k for k, v in spec.statuses.items()}
        row = {cols["legacy_id"]: f"{number}", cols["username"]: login, cols["name"]: name,
               cols["resident_id"]: ident, cols["phone"]: phone,
               cols["password"]: spec.hash(person.password, salt or "", login),
               cols["created_at"]: created}
        if "salt" in cols:
            row[cols["salt"]] = salt
        if "last_login_at" in cols:
            row[cols["last_login_at"]] = last
        if "status" in cols:
            row[cols["status"]] = meanings.get(status, meanings["active"])
        if "enabled" in cols:
            row[cols["enabled"]] = "0" if status == "disabled" and "status" not in cols \
                else ("1" if enabled else "0")
        yield row
        if fault < 6 and fault >= 5:
            number += 1
            twin = dict(row)
            twin[cols["legacy_id"]] = f"{number}"
            twin[cols["username"]] = login.lower()
            yield twin
        elif rng.random() < 0.003:
            number += 1                                        # the same person's admin login
            admin = dict(row)
            admin[cols["legacy_id"]] = f"{number}"
            admin[cols["username"]] = login + "_admin"
            yield admin


def table(spec: DepartmentSpec, metadata: sa.MetaData) -> sa.Table:
    """The department's table: every column text, as legacy systems kept it."""
    columns = list(dict.fromkeys(spec.columns.values()))
    return sa.Table(spec.table, metadata,
                    *(sa.Column(name, sa.String(255), primary_key=name == spec.columns[
                        "legacy_id"]) for name in columns))


def write(url: str, spec: DepartmentSpec, crowd: list[Person], chunk: int = 5000,
          fault_rate: float = FAULT_RATE) -> int:
    """Create the department's table at ``url`` and fill it; returns the
    number of rows."""
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    target = table(spec, metadata)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    count = 0
    batch: list[dict] = []
    with engine.begin() as conn:
        for row in rows(spec, crowd, fault_rate=fault_rate):
            batch.append(row)
            if len(batch) == chunk:
                conn.execute(target.insert(), batch)
                count += len(batch)
                batch = []
        if batch:
            conn.execute(target.insert(), batch)
            count += len(batch)
    engine.dispose()
    return count


def mapping(spec: DepartmentSpec, source: str) -> str:
    """The department's mapping file text; ``source`` is the ``[source]``
    table's body (``url = ...`` and ``table = ...``, or ``file = ...``)."""
    columns = "\n".join(f'{key} = "{value}"' for key, value in spec.columns.items())
    statuses = ("\n[status]\n" + "\n".join(f'"{key}" = "{value}"'
                                           for key, value in spec.statuses.items())
                if spec.statuses else "")
    return (f'[department]\ncode = "{spec.code}"\nname = "Department {spec.code}"\n\n'
            f"[source]\n{source}\n\n[columns]\n{columns}\n\n[password]\n"
            f'scheme = "{spec.scheme}"\n{statuses}\n\n[options]\ntrust = {spec.trust}\n')


@contextmanager
def legacy_database(kind: str) -> Iterator[str]:
    """A new, empty database on this machine's MariaDB (``mariadb``) or
    PostgreSQL (``postgresql``), dropped afterwards; yields its URL."""
    name = f"legacy_{uuid.uuid4().hex[:8]}"
    if kind == "mariadb":
        admin = sa.create_engine("mysql+pymysql://root@127.0.0.1:3306/")
        url = f"mysql+pymysql://root@127.0.0.1:3306/{name}?charset=utf8mb4"
    else:
        admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                                 isolation_level="AUTOCOMMIT")
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield url
    finally:
        with admin.connect() as conn:
            if kind == "postgresql":
                conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE datname = :n"), {"n": name})
            conn.execute(sa.text(f"DROP DATABASE {name}"))
        admin.dispose()
