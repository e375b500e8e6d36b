"""Expression schemes: how a legacy system hashed its passwords, written as
a small expression in a mapping file (docs/migration.md), such as
``md5(md5(password) + salt)`` (Discuz/UCenter) or
``md5(username + password + salt)`` (RuoYi).

Grammar (spaces between tokens are ignored)::

    expression := term ("+" term)*
    term       := STRING | FIELD | digest "(" expression ")"
                | "upper" "(" expression ")"
                | ("base64" | "bigint_hex") "(" digest-term ")"
                | "repeat" "(" INTEGER "," digest-term ")"
    FIELD      := password | salt | username | pepper
    digest     := md5 | sha1 | sha256 | sha512 | sm3
    STRING     := '...' or "..." (taken as written, no escapes)

A digest yields its lower-case hex; ``upper`` upper-cases; ``base64`` is
the standard Base64 of the raw digest; ``bigint_hex`` is Java's
``new BigInteger(1, digest).toString(16)``, which drops leading zeros;
``repeat(N, d(x))`` is ``d`` applied N times, each time after the first to
the previous hex (``repeat(2, md5(password))`` is ``md5(md5(password))``).
Hex results compare with the stored value ignoring case; others exactly.
The text is parsed, never evaluated as Python; a malformed expression is a
:class:`SchemeError` with the position of the fault.

The password is never normalised (case M-PW-4). Text becomes bytes in
UTF-8, then, when that does not match and the text is not ASCII, in GBK
(M-PW-5): the encoding that matched is the verification's answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes

from migration.hashes.base import PASSWORD_ENCODINGS
from migration.hashes.errors import SchemeError

#: Names an expression may read, and the row values they stand for.
FIELDS = frozenset({"password", "salt", "username", "pepper"})
#: Digest functions, by name (``hashlib`` names; SM3 through ``cryptography``).
DIGESTS = frozenset({"md5", "sha1", "sha256", "sha512", "sm3"})
#: Most iterations ``repeat`` accepts, and most digests an expression may
#: compute per password tried: a bound on a login's cost.
MAX_REPEAT = 100_000
#: Longest expression accepted, characters.
MAX_LENGTH = 1_000
#: Deepest nesting of calls accepted.
MAX_DEPTH = 16


@dataclass(frozen=True)
class _Literal:
    text: str


@dataclass(frozen=True)
class _Field:
    name: str


@dataclass(frozen=True)
class _Concat:
    parts: tuple


@dataclass(frozen=True)
class _Digest:
    name: str
    argument: object


@dataclass(frozen=True)
class _Upper:
    argument: object


@dataclass(frozen=True)
class _Encode:
    """``base64`` or ``bigint_hex`` of a digest's raw value."""

    name: str
    digest: object


@dataclass(frozen=True)
class _Repeat:
    count: int
    digest: _Digest


class _Parser:
    """Recursive descent over the expression's characters."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.depth = 0

    def fail(self, message: str, at: int | None = None) -> SchemeError:
        where = self.at if at is None else at
        return SchemeError(f"{message} at position {where + 1} of {self.text!r}", where)

    def skip(self) -> None:
        while self.at < len(self.text) and self.text[self.at] in " \t":
            self.at += 1

    def peek(self) -> str:
        self.skip()
        return self.text[self.at] if self.at < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            found = repr(self.peek()) if self.peek() else "the end"
            raise self.fail(f"expected {char!r}, found {found}")
        self.at += 1

    def word(self) -> tuple[str, int]:
        self.skip()
        start = self.at
        while self.at < len(self.text) and (self.text[self.at].isascii()
                                            and (self.text[self.at].isalnum()
                                                 or self.text[self.at] == "_")):
            self.at += 1
        return self.text[start:self.at], start

    def expression(self) -> object:
        parts = [self.term()]
        while self.peek() == "+":
            self.at += 1
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else _Concat(tuple(parts))

    def term(self) -> object:
        char = self.peek()
        if char in ("'", '"'):
            end = self.text.find(char, self.at + 1)
            if end < 0:
                raise self.fail("unterminated string")
            literal = _Literal(self.text[self.at + 1:end])
            self.at = end + 1
            return literal
        name, start = self.word()
        if not name:
            found = repr(char) if char else "the end"
            raise self.fail(f"expected a name, a function or a string, found {found}")
        if name in FIELDS:
            return _Field(name)
        if name not in DIGESTS and name not in ("upper", "base64", "bigint_hex", "repeat"):
            raise self.fail(f"unknown name {name!r}", start)
        self.expect("(")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"calls nested deeper than {MAX_DEPTH}", start)
        if name == "repeat":
            count_text, count_at = self.word()
            if not count_text.isdigit() or not 1 <= int(count_text) <= MAX_REPEAT:
                raise self.fail(f"repeat needs a count from 1 to {MAX_REPEAT}", count_at)
            self.expect(",")
            inner_at = self.at
            inner = self.digest_term()
            if isinstance(inner, _Repeat):
                raise self.fail("repeat of a repeat: write one repeat with the product of "
                                "the counts", inner_at)
            node: object = _Repeat(int(count_text), inner)
        elif name in ("base64", "bigint_hex"):
            node = _Encode(name, self.digest_term())
        else:
            argument = self.expression()
            node = _Upper(argument) if name == "upper" else _Digest(name, argument)
        self.expect(")")
        self.depth -= 1
        return node

    def digest_term(self) -> object:
        """A digest call, or a ``repeat`` of one: what has a raw value."""
        self.skip()
        start = self.at
        node = self.term()
        if isinstance(node, (_Repeat, _Digest)):
            return node
        raise self.fail("expected a digest such as md5(...) here", start)


class ExpressionScheme:
    """A password scheme given as an expression (see the module).

    :param text: the expression.
    :raises SchemeError: a malformed expression, with its position.
    """

    def __init__(self, text: str) -> None:
        if len(text) > MAX_LENGTH:
            raise SchemeError(f"the expression is longer than {MAX_LENGTH} characters", 0)
        parser = _Parser(text)
        self._tree = parser.expression()
        if parser.peek():
            raise parser.fail(f"unexpected {parser.peek()!r}")
        self.text = text
        if _cost(self._tree) > MAX_REPEAT:
            raise SchemeError(f"the expression computes more than {MAX_REPEAT} digests per "
                              "password", 0)
        self.fields: frozenset[str] = frozenset(_fields(self._tree))
        if "password" not in self.fields:
            raise SchemeError(f"the expression {text!r} never reads the password", 0)
        self._hex = _is_hex(self._tree)

    def verify(self, password: str, stored: str, values: Mapping[str, str | None]) -> str | None:
        """Whether ``password`` hashes to ``stored`` with the row's
        ``values`` (``salt``, ``username``, ``pepper``).

        :returns: the encoding that matched (``"utf-8"`` or ``"gbk"``), or None.
        :raises SchemeError: a field the expression reads is missing (None).
        """
        given = {"password": password, **values}
        for name in self.fields:
            if given.get(name) is None:
                raise SchemeError(f"the expression {self.text!r} reads {name}, "
                                  "which this row does not have", 0)
        texts = [given[name] for name in self.fields]
        encodings = (PASSWORD_ENCODINGS if not all(text.isascii() for text in texts)
                     else PASSWORD_ENCODINGS[:1])
        expected = stored.strip().lower() if self._hex else stored.strip()
        for encoding in encodings:
            try:
                result = _text(_evaluate(self._tree, given, encoding))
            except UnicodeEncodeError:
                continue
            if self._hex:
                result = result.lower()
            if hmac.compare_digest(result.encode(), expected.encode()):
                return encoding
        return None


def _fields(node: object) -> set[str]:
    if isinstance(node, _Field):
        return {node.name}
    if isinstance(node, _Concat):
        return set().union(*(_fields(part) for part in node.parts))
    for child in ("argument", "digest"):
        if hasattr(node, child):
            return _fields(getattr(node, child))
    return set()


def _cost(node: object) -> int:
    """How many digests the expression computes per password."""
    if isinstance(node, _Concat):
        return sum(_cost(part) for part in node.parts)
    if isinstance(node, _Digest):
        return 1 + _cost(node.argument)
    if isinstance(node, _Repeat):
        return node.count + _cost(node.digest.argument)
    if isinstance(node, (_Upper,)):
        return _cost(node.argument)
    if isinstance(node, _Encode):
        return _cost(node.digest)
    return 0


def _is_hex(node: object) -> bool:
    """Whether the expression's value is hex (compared ignoring case)."""
    if isinstance(node, _Upper):
        return _is_hex(node.argument)
    return isinstance(node, (_Digest, _Repeat)) or (
        isinstance(node, _Encode) and node.name == "bigint_hex")


class _Raw(bytes):
    """A digest's raw value; as text, its lower-case hex."""


def _text(value: str | _Raw) -> str:
    return value.hex() if isinstance(value, _Raw) else value


def _digest(name: str, data: bytes) -> _Raw:
    if name == "sm3":  # GB/T 32905, through OpenSSL as cryptography gives it
        sm3 = hashes.Hash(hashes.SM3())
        sm3.update(data)
        return _Raw(sm3.finalize())
    return _Raw(hashlib.new(name, data).digest())


def _evaluate(node: object, given: Mapping[str, str | None], encoding: str) -> str | _Raw:
    if isinstance(node, _Literal):
        return node.text
    if isinstance(node, _Field):
        return given[node.name]  # type: ignore[return-value]
    if isinstance(node, _Concat):
        return "".join(_text(_evaluate(part, given, encoding)) for part in node.parts)
    if isinstance(node, _Digest):
        return _digest(node.name, _text(_evaluate(node.argument, given, encoding))
                       .encode(encoding))
    if isinstance(node, _Upper):
        return _text(_evaluate(node.argument, given, encoding)).upper()
    if isinstance(node, _Repeat):
        value = _evaluate(node.digest, given, encoding)
        for _ in range(node.count - 1):
            value = _digest(node.digest.name, _text(value).encode("ascii"))
        return value
    if isinstance(node, _Encode):
        raw = _evaluate(node.digest, given, encoding)
        if node.name == "base64":
            return base64.b64encode(raw).decode("ascii")
        return format(int.from_bytes(raw, "big"), "x")
    raise AssertionError(f"unknown node {node!r}")
