"""The sandbox gateway's synthetic dataset: a SQLite file of people (with
valid GB 11643 resident ID numbers, social-security cards and mobile
numbers) and legal entities (with valid GB 32100 credit codes).

Entirely made up and reproducible: the same ``seed`` gives the same rows.
The first people and entities are fixed, documented demo identities
(:data:`DEMO_PEOPLE`, :data:`DEMO_ENTITIES`, also in ``docs/connectors.md``)
that tests and the demo rely on; the rest are drawn from ``random.Random(seed)``.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from connectors.identifiers import USCC_ALPHABET, id_check_character, uscc_check_character

#: Area codes of real districts (GB/T 2260): Beijing Dongcheng, Shanghai
#: Huangpu, Guangzhou, Hangzhou Xihu, Chengdu Jinjiang, Wuhan Jiang'an,
#: Nanjing Xuanwu, Hefei Yaohai.
AREA_CODES = ("110101", "310101", "440101", "330106", "510104", "420102", "320102", "340102")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾"
_GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
          "涛", "明", "超", "秀英", "霞", "平", "刚", "桂英", "建华", "志强", "海燕", "晓东")
_ENTITY_WORDS = ("华信", "安达", "恒通", "瑞丰", "新源", "明德", "长青", "宏远", "金桥", "同创")
_ENTITY_KINDS = ("科技有限公司", "贸易有限公司", "建设工程有限公司", "餐饮服务中心",
                 "物流有限公司", "农业专业合作社")
_MOBILE_PREFIXES = ("139", "138", "137", "136", "135", "186", "158", "150", "177", "189")


def _id(first17: str) -> str:
    return first17 + id_check_character(first17)


def _uscc(first17: str) -> str:
    return first17 + uscc_check_character(first17)


@dataclass(frozen=True)
class Person:
    """One synthetic resident.

    :ivar status: ``alive``, ``deceased`` or ``cancelled`` (population registry).
    :ivar card_status: the social-security card: ``active``, ``lost``,
        ``suspended`` or ``cancelled``.
    :ivar phone: E.164 mobile number registered to the person at a carrier.
    """

    name: str
    id_number: str
    status: str
    card_number: str
    card_status: str
    phone: str


@dataclass(frozen=True)
class Entity:
    """One synthetic legal entity; ``status`` is ``active`` or ``revoked``;
    its legal representative is one of the people."""

    uscc: str
    name: str
    status: str
    representative_name: str
    representative_id: str


#: Fixed demo people, always the first rows of every seeded dataset. The
#: first five are in good standing (alive, card active, phone registered):
#: they can reach every assurance level. The others show the other answers.
DEMO_PEOPLE: tuple[Person, ...] = (
    Person("张伟", _id("11010119900307001"), "alive", "A00000001", "active", "+8613900000001"),
    Person("李娜", _id("31010119851212002"), "alive", "A00000002", "active", "+8613900000002"),
    Person("王芳", _id("44010119770808004"), "alive", "A00000003", "active", "+8613900000003"),
    Person("刘洋", _id("33010620000229003"), "alive", "A00000004", "active", "+8613900000004"),
    Person("陈静", _id("51010419680115002"), "alive", "A00000005", "active", "+8613900000005"),
    Person("杨磊", _id("42010219920630005"), "alive", "A00000006", "lost", "+8613900000006"),
    Person("黄敏", _id("32010219830411006"), "alive", "A00000007", "suspended",
           "+8613900000007"),
    Person("赵强", _id("11010119400101001"), "deceased", "A00000008", "cancelled",
           "+8613900000008"),
    Person("周丽", _id("31010119750505008"), "cancelled", "A00000009", "cancelled",
           "+8613900000009"),
)
#: Fixed demo legal entities: the first is active, the second revoked; their
#: legal representatives are the first three demo people.
DEMO_ENTITIES: tuple[Entity, ...] = (
    Entity(_uscc("91110101MA0000001"), "北京示范科技有限公司", "active",
           DEMO_PEOPLE[0].name, DEMO_PEOPLE[0].id_number),
    Entity(_uscc("91310101MA0000002"), "上海样例贸易有限公司", "revoked",
           DEMO_PEOPLE[1].name, DEMO_PEOPLE[1].id_number),
    Entity(_uscc("12440101MB0000003"), "广州市示范事业单位服务中心", "active",
           DEMO_PEOPLE[2].name, DEMO_PEOPLE[2].id_number),
)
#: Version of the dataset's layout (SQLite ``user_version``); an older file
#: must be seeded again. 3: the ``mails`` table of the SMTP receiver.
DATASET_VERSION = 3

_SCHEMA = """
CREATE TABLE people (
    idx INTEGER PRIMARY KEY,            -- order of generation; demo people first
    name TEXT NOT NULL,
    id_number TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,               -- alive | deceased | cancelled
    card_number TEXT NOT NULL,
    card_status TEXT NOT NULL,          -- active | lost | suspended | cancelled
    phone TEXT NOT NULL UNIQUE          -- E.164, registered at a carrier
);
CREATE TABLE entities (
    idx INTEGER PRIMARY KEY,
    uscc TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    status TEXT NOT NULL,               -- active | revoked
    representative_name TEXT NOT NULL,  -- the legal representative, one of the people
    representative_id TEXT NOT NULL
);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    phone TEXT NOT NULL,
    template TEXT NOT NULL,
    params TEXT NOT NULL,               -- JSON object
    sent_at REAL NOT NULL               -- Unix time
);
CREATE INDEX outbox_phone ON outbox (phone);
CREATE TABLE mails (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,           -- the Message-ID header (one made up if absent)
    mail_from TEXT NOT NULL,            -- envelope sender (MAIL FROM)
    rcpt TEXT NOT NULL,                 -- one envelope recipient (RCPT TO), one row each
    subject TEXT NOT NULL,
    body TEXT NOT NULL,                 -- the text/plain part, decoded
    received_at REAL NOT NULL           -- Unix time
);
CREATE INDEX mails_rcpt ON mails (rcpt);
CREATE TABLE nonces (
    access_key TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (access_key, nonce)
);
"""


def _random_people(rng: random.Random, count: int, taken_ids: set[str],
                   taken_phones: set[str]) -> list[Person]:
    people: list[Person] = []
    while len(people) < count:
        n = len(people)
        birth = f"{rng.randint(1940, 2006)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        number = _id(rng.choice(AREA_CODES) + birth + f"{rng.randint(0, 999):03d}")
        phone = f"+86{rng.choice(_MOBILE_PREFIXES)}{rng.randint(0, 99_999_999):08d}"
        name = rng.choice(_SURNAMES) + rng.choice(_GIVEN)
        roll = rng.random()
        if number in taken_ids or phone in taken_phones:
            continue
        taken_ids.add(number)
        taken_phones.add(phone)
        # About 3 % deceased, 2 % cancelled; 5 % of cards lost, 3 % suspended.
        status = "deceased" if roll < 0.03 else "cancelled" if roll < 0.05 else "alive"
        card = ("cancelled" if status != "alive" else "lost" if 0.05 <= roll < 0.10
                else "suspended" if 0.10 <= roll < 0.13 else "active")
        people.append(Person(name, number, status, f"B{n + 1:08d}", card, phone))
    return people


def _random_entities(rng: random.Random, count: int, taken: set[str],
                     people: list[Person]) -> list[Entity]:
    entities: list[Entity] = []
    while len(entities) < count:
        # Registration authority 9 (market regulation), category 1 (enterprise),
        # a real area code, then a nine-character organisation code.
        body = "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
        code = _uscc("91" + rng.choice(AREA_CODES) + body)
        name = (rng.choice(("北京", "上海", "广州", "杭州", "成都", "武汉"))
                + rng.choice(_ENTITY_WORDS) + rng.choice(_ENTITY_KINDS))
        revoked = rng.random() < 0.08
        representative = rng.choice(people)
        if code in taken:
            continue
        taken.add(code)
        entities.append(Entity(code, name, "revoked" if revoked else "active",
                               representative.name, representative.id_number))
    return entities


def seed(path: str | Path, people: int = 100, entities: int = 20, seed: int = 0) -> None:
    """Create (or replace) the dataset at ``path``.

    :param people: total number of people, the :data:`DEMO_PEOPLE` included.
    :param entities: total number of legal entities, :data:`DEMO_ENTITIES` included.
    :param seed: seed of the generator; the same seed gives the same rows.
    :raises ValueError: if ``people`` or ``entities`` is smaller than the demo set.
    """
    if people < len(DEMO_PEOPLE) or entities < len(DEMO_ENTITIES):
        raise ValueError(f"need at least {len(DEMO_PEOPLE)} people and "
                         f"{len(DEMO_ENTITIES)} entities (the fixed demo identities)")
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducibility wanted
    persons = list(DEMO_PEOPLE) + _random_people(
        rng, people - len(DEMO_PEOPLE), {p.id_number for p in DEMO_PEOPLE},
        {p.phone for p in DEMO_PEOPLE})
    orgs = list(DEMO_ENTITIES) + _random_entities(
        rng, entities - len(DEMO_ENTITIES), {e.uscc for e in DEMO_ENTITIES}, persons)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as conn:
        conn.executescript(_SCHEMA)
        conn.executemany("INSERT INTO people (name, id_number, status, card_number, "
                         "card_status, phone) VALUES (?, ?, ?, ?, ?, ?)",
                         [(p.name, p.id_number, p.status, p.card_number, p.card_status,
                           p.phone) for p in persons])
        conn.executemany("INSERT INTO entities (uscc, name, status, representative_name, "
                         "representative_id) VALUES (?, ?, ?, ?, ?)",
                         [(e.uscc, e.name, e.status, e.representative_name,
                           e.representative_id) for e in orgs])
        conn.execute(f"PRAGMA user_version = {DATASET_VERSION}")
    conn.close()
    # Replace atomically so a running sandbox never sees a half-written file.
    tmp.replace(path)


def dataset_version(path: str | Path) -> int | None:
    """The layout version of the dataset at ``path``, or None if there is none."""
    if not Path(path).is_file():
        return None
    conn = sqlite3.connect(path, timeout=10)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection to the dataset (rows as :class:`sqlite3.Row`).

    :raises FileNotFoundError: if the dataset was never seeded, or was
        seeded by an older version (its layout differs).
    """
    version = dataset_version(path)
    if version is None:
        raise FileNotFoundError(f"no sandbox dataset at {path}: run `idp sandbox seed`")
    if version != DATASET_VERSION:
        raise FileNotFoundError(f"the sandbox dataset at {path} is of an older layout: run "
                                "`idp sandbox seed` again")
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def demo_people(path: str | Path, limit: int = 5) -> list[Person]:
    """The first ``limit`` people of the dataset (the demo identities first)."""
    conn = connect(path)
    try:
        rows = conn.execute("SELECT name, id_number, status, card_number, card_status, phone "
                            "FROM people ORDER BY idx LIMIT ?", (limit,)).fetchall()
    finally:
        conn.close()
    return [Person(**dict(row)) for row in rows]


def read_outbox(path: str | Path, phone: str) -> list[dict]:
    """Messages the sandbox "sent" to ``phone`` (E.164), oldest first.

    :returns: dicts with ``message_id``, ``phone``, ``template``, ``params``
        (dict) and ``sent_at`` (Unix time).
    """
    conn = connect(path)
    try:
        rows = conn.execute("SELECT message_id, phone, template, params, sent_at FROM outbox "
                            "WHERE phone = ? ORDER BY id", (phone,)).fetchall()
    finally:
        conn.close()
    return [dict(row, params=json.loads(row["params"])) for row in rows]


def read_mail(path: str | Path, to: str) -> list[dict]:
    """Mails the sandbox's SMTP receiver took for the address ``to`` (compared
    case-insensitively), oldest first.

    :returns: dicts with ``message_id``, ``mail_from``, ``rcpt``, ``subject``,
        ``body`` and ``received_at`` (Unix time).
    """
    conn = connect(path)
    try:
        rows = conn.execute("SELECT message_id, mail_from, rcpt, subject, body, received_at "
                            "FROM mails WHERE rcpt = ? COLLATE NOCASE ORDER BY id",
                            (to,)).fetchall()
    finally:
        conn.close()
    return [dict(row) for row in rows]


def remember_nonce(conn: sqlite3.Connection, access_key: str, nonce: str, ttl: float) -> bool:
    """Record a nonce for ``ttl`` seconds.

    :returns: False if it was already recorded and not expired (a replay).
    """
    now = time.time()
    conn.execute("DELETE FROM nonces WHERE expires < ?", (now,))
    cur = conn.execute("INSERT OR IGNORE INTO nonces (access_key, nonce, expires) "
                       "VALUES (?, ?, ?)", (access_key, nonce, now + ttl))
    return cur.rowcount == 1
