"""Values as a spreadsheet held them."""

from __future__ import annotations


class NumberCell(str):
    """The text of a spreadsheet cell that held a number, not text: a
    whole number as its digits, another as Python writes it. An identifier
    in such a cell has been through a floating-point number (Excel keeps 15
    significant digits, an 18-digit ID number does not survive it) and is
    damaged whatever its digits now say (case M-ID-3)."""

    __slots__ = ()

    @classmethod
    def of(cls, number: int | float) -> NumberCell:
        """The cell's text: ``9.90101E+17`` read as a float gives
        ``990101000000000000``, never an exponent."""
        if isinstance(number, float) and number.is_integer():
            return cls(str(int(number)))
        return cls(str(number))
