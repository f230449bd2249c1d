"""The ``numeric`` grader: the first number in the answer is ``expected``, within a tolerance."""

from __future__ import annotations

import re
from typing import Any

from .base import NO_EXPECTED, Grade, GraderError, SyncGrader, boolean_expected, quote
from .registry import grader

_SIGN = r"(?<![\w.,])([+\-\u2212]?)"
_EXPONENT = r"(?:[eE]([+\-]?\d+))?"
_NUMBER_DOT = re.compile(_SIGN + r"(\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)" + _EXPONENT)
_NUMBER_COMMA = re.compile(_SIGN + r"(\d{1,3}(?:\.\d{3})+(?!\d)(?:,\d+)?|\d+(?:,\d+)?)" + _EXPONENT)


def _fmt(x: float) -> str:
    return f"{x:.10g}"


@grader("numeric")
def numeric(*, tolerance: float = 0.0, rel_tolerance: float = 0.0, decimal_comma: bool = False) -> SyncGrader:
    """The first number in the answer is ``expected``, within a tolerance.

    The number may carry a sign (also U+2212), decimals, an exponent and thousands
    separators: ``-1,234.5`` is -1234.5 ("3,5" is 3, the first of a list). With
    ``decimal_comma`` (false) the roles swap: ``1.234,5`` is 1234.5 and ``3,5`` is 3.5.
    A minus glued to a word is not a sign ("gpt-4" reads 4). Options: ``tolerance``
    (absolute, default 0) and ``rel_tolerance`` (relative to ``expected``, default 0); the
    answer passes if within either. The score is 1 or 0: how far off counts as "partly
    right" depends on the quantity, so it is not guessed. ``expected`` is a number or a
    string holding one.
    """
    if tolerance < 0:
        raise GraderError(f"tolerance must be >= 0, got {tolerance:g}", "tolerance")
    if rel_tolerance < 0:
        raise GraderError(f"rel_tolerance must be >= 0, got {rel_tolerance:g}", "rel_tolerance")
    pattern = _NUMBER_COMMA if decimal_comma else _NUMBER_DOT
    thousands, decimal = (".", ",") if decimal_comma else (",", ".")

    def value(found: re.Match[str]) -> float:
        sign, digits, exponent = found.groups()
        text = digits.replace(thousands, "").replace(decimal, ".")
        number = float(f"{text}e{exponent}" if exponent else text)
        return -number if sign in ("-", "\u2212") else number

    def prepare(expected: Any) -> float:
        if expected is None:
            raise GraderError(NO_EXPECTED, "expected")
        if isinstance(expected, bool):
            raise boolean_expected(expected)
        if isinstance(expected, (int, float)):
            return float(expected)
        if isinstance(expected, str):
            found = pattern.fullmatch(expected.strip())
            if found:
                return value(found)
        raise GraderError(f"expected must be a number, got {expected!r}", "expected")

    def check(output: str, expected: float) -> Grade:
        found = pattern.search(output)
        if found is None:
            return Grade(False, 0.0, f"no number in {quote(output.strip())}")
        got = value(found)
        off = abs(got - expected)
        allowed = max(tolerance, rel_tolerance * abs(expected))
        # Slack for binary floats, so that 1.1 is within 0.1 of 1.0.
        if off <= allowed + 1e-12 * max(abs(got), abs(expected)):
            if off == 0:
                return Grade(True, 1.0, f"{_fmt(got)} as expected")
            return Grade(True, 1.0, f"{_fmt(got)} is within {_fmt(allowed)} of {_fmt(expected)}")
        within = f" (tolerance {_fmt(allowed)})" if allowed else ""
        return Grade(False, 0.0, f"expected {_fmt(expected)}, got {_fmt(got)}{within}")

    return SyncGrader("numeric", check, prepare)
