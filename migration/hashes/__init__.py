"""Legacy password schemes: how each department's system stored its
passwords, so that an old password verifies at the user's first login
(docs/migration.md, "Passwords after migration").

A scheme is named (one small class each, in this package's modules) or
written as an expression (:mod:`migration.hashes.expression`);
:func:`scheme_for` gives either from a mapping's ``scheme`` text.
"""

from __future__ import annotations

import re

# The named schemes register themselves when their modules are imported.
from migration.hashes import (  # noqa: F401
    aspnet,
    bcrypt,
    crypt,
    django,
    jeecg,
    keycloak,
    mssql,
    phpass,
    shiro,
    spring,
    wordpress,
)
from migration.hashes.base import NAMED, NamedScheme
from migration.hashes.errors import SchemeError
from migration.hashes.expression import ExpressionScheme

__all__ = ["ExpressionScheme", "NamedScheme", "SchemeError", "scheme_for"]

Scheme = NamedScheme | ExpressionScheme


def scheme_for(text: str) -> Scheme:
    """The scheme a mapping names: a named one (``"bcrypt"``, or with its
    parameters, ``"shiro(MD5, 2)"``) or an expression
    (``"md5(md5(password) + salt)"``).

    :raises SchemeError: an unknown name, parameters the named scheme does
        not take, or a malformed expression (with the position of the fault).
    """
    name = text.strip()
    if name in NAMED:
        return NAMED[name]()
    called = re.fullmatch(r"([a-z0-9_]+)\((.*)\)", name)
    if called and called[1] in NAMED:
        parameters = [part.strip() for part in called[2].split(",")]
        try:
            return NAMED[called[1]](*parameters)
        except TypeError:
            raise SchemeError(f"the scheme {called[1]} takes no parameters "
                              f"like {called[2]!r}") from None
    if re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise SchemeError(f"unknown scheme {name!r}: named schemes are "
                          f"{', '.join(sorted(NAMED))}, or write an expression "
                          "such as md5(password + salt)")
    return ExpressionScheme(text)
