"""Exact credit amounts.

Credits travel as decimal strings and live inside creditflow as integer micro-credits
(1 credit = 1,000,000 micro-credits), so sums are exact and never touch binary floats.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from itertools import chain, repeat
from operator import floordiv, mod

from core.excerpt import excerpt

__all__ = (
    "MAX_EVENT_MICRO",
    "MICRO",
    "CreditsError",
    "format_micro",
    "format_micros",
    "micro_from_decimal",
    "micro_from_json_number",
    "micro_from_text",
    "micro_from_total",
    "round_half_up",
)

MICRO = 1_000_000
MAX_EVENT_MICRO = 1_000_000_000 * MICRO
_MAX_FRACTION_DIGITS = 6
_SHORT_COLUMN = 32
_ONE_MICRO = Decimal(1).scaleb(-_MAX_FRACTION_DIGITS)

# A decimal string as the contract allows it: digits, optionally a point and more digits.
_DECIMAL_TEXT = re.compile(r"([0-9]+)(?:\.([0-9]+))?")


class CreditsError(ValueError):
    """A credits value that is not an exact, non-negative amount within the contract's bounds."""


def micro_from_text(text: str) -> int:
    """Parse a decimal string such as ``"12.5"`` into micro-credits.

    Accepts plain decimal notation only (no sign, exponent, spaces or underscores).
    Trailing zeros beyond six fractional digits are fine; other digits there are not.
    """
    match = _DECIMAL_TEXT.fullmatch(text)
    if match is None:
        raise CreditsError(f"credits must be a plain decimal string, got {excerpt(text)}")
    whole, fraction = match.group(1).lstrip("0") or "0", match.group(2) or ""
    if len(whole) > len(str(MAX_EVENT_MICRO // MICRO)):
        # Too large; checked before int(), which refuses strings of more than 4,300 digits.
        raise CreditsError("credits must be <= 1000000000")
    if len(fraction) > _MAX_FRACTION_DIGITS:
        if fraction[_MAX_FRACTION_DIGITS:].strip("0"):
            raise CreditsError("credits have more than 6 fractional digits")
        fraction = fraction[:_MAX_FRACTION_DIGITS]
    micro = int(whole) * MICRO + int(fraction.ljust(_MAX_FRACTION_DIGITS, "0"))
    return _bounded(micro)


def micro_from_total(text: str, max_digits: int = 40) -> int:
    """Parse a total (a sum of events, so unbounded) such as ``"2000000000.5"``.

    Non-negative, plain decimal notation, at most 6 significant fractional digits, at most
    ``max_digits`` whole digits (far above any real sum, and below ``int()``'s digit limit).
    """
    # str methods, not _DECIMAL_TEXT: a view rebuild parses one total per bucket (millions).
    whole, dot, fraction = text.partition(".")
    if not (whole.isascii() and whole.isdigit() and (not dot or fraction.isdigit())):
        raise CreditsError(f"a total must be a plain decimal string, got {text[:40]!r}")
    whole = whole.lstrip("0") or "0"
    if len(whole) > max_digits:
        raise CreditsError(f"a total must have at most {max_digits} whole digits")
    if fraction[_MAX_FRACTION_DIGITS:].strip("0"):
        raise CreditsError("a total has more than 6 fractional digits")
    return int(whole) * MICRO + int(
        fraction[:_MAX_FRACTION_DIGITS].ljust(_MAX_FRACTION_DIGITS, "0")
    )


def micro_from_json_number(text: str) -> int:
    """Parse the literal text of a JSON number (``12.5``, ``1e3``) into micro-credits."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CreditsError(f"credits must be a number, got {excerpt(text)}") from None
    return micro_from_decimal(value)


def micro_from_decimal(value: Decimal | int) -> int:
    """Convert an exact Decimal or int amount of credits into micro-credits."""
    if isinstance(value, bool):
        raise CreditsError("credits must be a number, not a boolean")
    if isinstance(value, int):
        return _bounded(value * MICRO)
    if not value.is_finite():
        raise CreditsError("credits must be a finite number")
    if value < 0:
        raise CreditsError("credits must be >= 0")
    if value > MAX_EVENT_MICRO // MICRO:
        raise CreditsError("credits must be <= 1000000000")
    # quantize() rounds the exact value; scaleb() would first round it to the context's 28
    # digits, silently accepting e.g. 1.0000000000000000000000000001 as 1.
    whole_micro = value.quantize(_ONE_MICRO)
    if whole_micro != value:
        raise CreditsError("credits have more than 6 fractional digits")
    return _bounded(int(whole_micro.scaleb(_MAX_FRACTION_DIGITS)))


def _bounded(micro: int) -> int:
    if micro < 0:
        raise CreditsError("credits must be >= 0")
    if micro > MAX_EVENT_MICRO:
        raise CreditsError("credits must be <= 1000000000")
    return micro


def format_micro(micro: int) -> str:
    """Render micro-credits as the shortest exact decimal string (``12500000`` -> ``"12.5"``)."""
    if micro < 0:
        return "-" + format_micro(-micro)
    # Cut the digits instead of divmod and a formatted fraction (~40% faster), and strip the
    # text's zeros at once (~13% more): a day record renders one amount per bucket.
    digits = str(micro)
    if len(digits) > _MAX_FRACTION_DIGITS:
        text = digits[:-_MAX_FRACTION_DIGITS] + "." + digits[-_MAX_FRACTION_DIGITS:]
    else:
        text = "0." + "0" * (_MAX_FRACTION_DIGITS - len(digits)) + digits
    return text.rstrip("0").rstrip(".")


def format_micros(column: Sequence[int]) -> list[str]:
    """:func:`format_micro` of each amount, a column at a time.

    One ``%`` format renders every amount's whole and zero-padded fraction, and C-level maps
    strip the zeros: on the columns of a long series (hundreds of amounts and more) that took
    0.65-0.9x the time of one call per amount here, and more on short ones, which therefore
    get the calls.
    """
    if len(column) < _SHORT_COLUMN or min(column) < 0:  # floor division misplaces a sign
        return list(map(format_micro, column))
    parts = (("%d.%06d\0" * len(column)) % _whole_and_fraction(column)).split("\0")
    parts.pop()  # after the last separator
    return list(map(str.rstrip, map(str.rstrip, parts, repeat("0")), repeat(".")))


def _whole_and_fraction(column: Sequence[int]) -> tuple[int, ...]:
    """``(whole, micro fraction, whole, micro fraction, ...)`` of non-negative amounts."""
    return tuple(
        chain.from_iterable(
            zip(map(floordiv, column, repeat(MICRO)), map(mod, column, repeat(MICRO)), strict=True)
        )
    )


def round_half_up(amount: Decimal, minor_digits: int) -> Decimal:
    """Round a money amount half-up to ``minor_digits`` decimals (2 for USD, 0 for KRW)."""
    return amount.quantize(Decimal(1).scaleb(-minor_digits), rounding=ROUND_HALF_UP)
