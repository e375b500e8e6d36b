"""Errors of the legacy password schemes."""

from __future__ import annotations


class SchemeError(ValueError):
    """A scheme that cannot be used as written: a malformed expression, an
    unknown scheme name, a field the row does not have.

    :ivar position: the 0-based character position of the fault in the
        expression, or 0 when it is not one character's.
    """

    def __init__(self, message: str, position: int = 0) -> None:
        super().__init__(message)
        self.position = position
