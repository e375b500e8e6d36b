"""SQL Server's ``HASHBYTES`` over an ``nvarchar`` password column."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from migration.hashes.base import NamedScheme

#: HASHBYTES algorithms by the length of their hex digest.
_BY_HEX_LENGTH = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}


class MssqlHashbytes(NamedScheme):
    """``0x`` and upper-case hex of ``HASHBYTES('MD5' | 'SHA1' | 'SHA2_256'
    | 'SHA2_512', @password)`` where ``@password`` is ``nvarchar``: the
    digest of the password's UTF-16LE bytes (case M-PW-5). The algorithm
    is told by the digest's length; the ``0x`` prefix and the case are
    optional."""

    name = "mssql_hashbytes"

    def verify(self, password: str, stored: str, values: Mapping[str, str | None]) -> str | None:
        digest = stored.strip().lower().removeprefix("0x")
        algorithm = _BY_HEX_LENGTH.get(len(digest))
        if algorithm is None:
            return None
        try:
            secret = password.encode("utf-16le")
        except UnicodeEncodeError:  # a lone surrogate: no nvarchar held it
            return None
        return "utf-16le" if hmac.compare_digest(
            hashlib.new(algorithm, secret).hexdigest(), digest) else None
