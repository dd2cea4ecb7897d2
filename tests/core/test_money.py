"""Exact credits: decimal strings and JSON number text in, integer micro-credits out."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.money import (
    MAX_EVENT_MICRO,
    MICRO,
    CreditsError,
    format_micro,
    format_micros,
    micro_from_decimal,
    micro_from_json_number,
    micro_from_text,
    round_half_up,
)
from tests.core.support import FAST, THOROUGH


def test_constants() -> None:
    assert MICRO == 1_000_000
    assert MAX_EVENT_MICRO == 10**9 * 10**6


# ------------------------------------------------------------------ decimal strings


@pytest.mark.parametrize(
    ("text", "micro"),
    [
        ("0", 0),
        ("0.0", 0),
        ("12.5", 12_500_000),
        ("12.50", 12_500_000),
        ("0.000001", 1),
        ("0.1", 100_000),
        ("7", 7_000_000),
        ("007.25", 7_250_000),
        ("12.500000000", 12_500_000),  # zeros beyond the 6th digit are harmless
        ("0.0000010000", 1),
        ("999999999.999999", 999_999_999_999_999),
        ("1000000000", MAX_EVENT_MICRO),
        ("1000000000.000000000", MAX_EVENT_MICRO),
        ("0" * 5000 + "1", MICRO),  # long but small: no int() digit-limit crash
        ("1." + "0" * 5000, MICRO),
    ],
)
def test_micro_from_text_accepts(text: str, micro: int) -> None:
    assert micro_from_text(text) == micro


@pytest.mark.parametrize(
    "text",
    [
        "",
        " 1",
        "1 ",
        "1\n",
        "+1",
        "-1",
        "-0",
        "1e3",
        "1E3",
        ".5",
        "5.",
        "1,5",
        "1_000",
        "NaN",
        "nan",
        "Infinity",
        "inf",
        "0x10",
        "١٢",  # Arabic-Indic digits are digits to str.isdigit, not to the contract
        "１２",  # fullwidth digits
    ],
)
def test_micro_from_text_rejects_non_plain_decimals(text: str) -> None:
    with pytest.raises(CreditsError, match="plain decimal string"):
        micro_from_text(text)


@pytest.mark.parametrize(
    "text",
    ["0.0000001", "12.3456789", "1.0000001", "0.1000000000000000055511151231257827"],
)
def test_micro_from_text_rejects_more_than_six_fractional_digits(text: str) -> None:
    with pytest.raises(CreditsError, match="more than 6 fractional digits"):
        micro_from_text(text)


@pytest.mark.parametrize(
    "text", ["1000000000.000001", "1000000001", "99999999999", "9" * 5000, "1" + "0" * 4400]
)
def test_micro_from_text_rejects_more_than_a_billion(text: str) -> None:
    # The 5000-digit case used to escape as a bare ValueError from int() (Python's 4,300-digit
    # limit) and would have crashed the worker instead of becoming a DLQ rejection.
    with pytest.raises(CreditsError, match="<= 1000000000"):
        micro_from_text(text)


def test_credits_error_is_a_value_error() -> None:
    assert issubclass(CreditsError, ValueError)


# ------------------------------------------------------------------ JSON number text


@pytest.mark.parametrize(
    ("text", "micro"),
    [
        ("0", 0),
        ("-0", 0),
        ("-0.0", 0),
        ("12.5", 12_500_000),
        ("3", 3_000_000),
        ("1e3", 1_000_000_000),
        ("1E3", 1_000_000_000),
        ("1e+3", 1_000_000_000),
        ("2.5e-5", 25),
        ("1e-6", 1),
        ("1e9", MAX_EVENT_MICRO),
        ("0.000001", 1),
        ("12.5" + "0" * 40, 12_500_000),  # more digits than Decimal's 28-digit context
        ("0e999999999", 0),
    ],
)
def test_micro_from_json_number_accepts(text: str, micro: int) -> None:
    assert micro_from_json_number(text) == micro


@pytest.mark.parametrize(
    "text",
    [
        "0.1000000000000000055511151231257827",  # the binary double nearest 0.1
        "1e-7",
        "12.3456789",
        # These two have more significant digits than Decimal's default 28-digit context; a
        # context-rounded scaleb() used to round them to whole micro-credits and accept them.
        "1.0000000000000000000000000001",
        "123456789.0000000000000000000001",
        "1e-1000030",  # would underflow to zero in a context operation
    ],
)
def test_micro_from_json_number_rejects_more_than_six_fractional_digits(text: str) -> None:
    with pytest.raises(CreditsError, match="more than 6 fractional digits"):
        micro_from_json_number(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1", ">= 0"),
        ("-0.000001", ">= 0"),
        ("-1e-30", ">= 0"),
        ("1e10", "<= 1000000000"),
        ("1000000000.000001", "<= 1000000000"),
        ("1" + "0" * 40, "<= 1000000000"),
        ("NaN", "finite"),
        ("sNaN", "finite"),
        ("Infinity", "finite"),
        ("-Infinity", "finite"),
        ("abc", "must be a number"),
        ("", "must be a number"),
        ("1.2.3", "must be a number"),
    ],
)
def test_micro_from_json_number_rejects(text: str, message: str) -> None:
    with pytest.raises(CreditsError, match=message):
        micro_from_json_number(text)


# ------------------------------------------------------------------ Decimal / int


def test_micro_from_decimal_and_int() -> None:
    assert micro_from_decimal(Decimal("12.5")) == 12_500_000
    assert micro_from_decimal(Decimal("12.500000000000")) == 12_500_000
    assert micro_from_decimal(3) == 3_000_000
    assert micro_from_decimal(0) == 0
    assert micro_from_decimal(10**9) == MAX_EVENT_MICRO
    assert micro_from_decimal(Decimal("1E+9")) == MAX_EVENT_MICRO


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "boolean"),
        (False, "boolean"),
        (-1, ">= 0"),
        (10**9 + 1, "<= 1000000000"),
        (Decimal("-0.000001"), ">= 0"),
        (Decimal("NaN"), "finite"),
        (Decimal("Infinity"), "finite"),
        (Decimal("0.0000005"), "more than 6 fractional digits"),
        (Decimal("1000000000.1"), "<= 1000000000"),
    ],
)
def test_micro_from_decimal_rejects(value: Decimal | int, message: str) -> None:
    with pytest.raises(CreditsError, match=message):
        micro_from_decimal(value)


# ------------------------------------------------------------------ formatting


@pytest.mark.parametrize(
    ("micro", "text"),
    [
        (0, "0"),
        (1, "0.000001"),
        (10, "0.00001"),
        (100_000, "0.1"),
        (12_500_000, "12.5"),
        (12_000_000, "12"),
        (123_456_789, "123.456789"),
        (MAX_EVENT_MICRO, "1000000000"),
        (10**18 + 1, "1000000000000.000001"),  # sums may exceed one event's bound
        (-1, "-0.000001"),
        (-12_500_000, "-12.5"),
        (-3_000_000, "-3"),
    ],
)
def test_format_micro(micro: int, text: str) -> None:
    assert format_micro(micro) == text


micro_amounts = st.integers(min_value=0, max_value=MAX_EVENT_MICRO)


@FAST
@given(micro_amounts)
def test_format_then_parse_round_trips(micro: int) -> None:
    text = format_micro(micro)
    assert micro_from_text(text) == micro
    assert micro_from_json_number(text) == micro
    assert micro_from_decimal(Decimal(text)) == micro
    assert Decimal(text) * MICRO == micro  # the string is the exact value
    # Shortest form: no trailing fractional zeros, no dangling point.
    assert not text.endswith(".")
    if "." in text:
        assert not text.endswith("0")
        assert len(text.split(".")[1]) <= 6


@FAST
@given(st.integers(min_value=-(10**20), max_value=10**20))
def test_format_micro_is_exact_for_any_sum(micro: int) -> None:
    assert Fraction(format_micro(micro)) == Fraction(micro, MICRO)


@FAST
@given(st.lists(st.integers(min_value=-(10**20), max_value=10**30), max_size=100))
def test_format_micros_is_format_micro_of_each(column: list[int]) -> None:
    assert format_micros(column) == [format_micro(micro) for micro in column]


def _expected_micro(value: Fraction) -> int | None:
    """Brute-force contract: micro-credits of an exact value, or None when it is invalid."""
    micro = value * MICRO
    if micro.denominator != 1 or micro < 0 or micro > MAX_EVENT_MICRO:
        return None
    return int(micro)


@THOROUGH
@given(
    whole=st.integers(min_value=0, max_value=2 * 10**9),
    fraction=st.text(alphabet="0123456789", max_size=12),
    leading_zeros=st.integers(min_value=0, max_value=3),
)
def test_plain_decimals_match_exact_arithmetic(
    whole: int, fraction: str, leading_zeros: int
) -> None:
    text = "0" * leading_zeros + str(whole) + (f".{fraction}" if fraction else "")
    expected = _expected_micro(Fraction(text))
    for parse in (micro_from_text, micro_from_json_number):
        if expected is None:
            with pytest.raises(CreditsError):
                parse(text)
        else:
            assert parse(text) == expected


@THOROUGH
@given(
    mantissa=st.integers(min_value=-(10**12), max_value=10**40),
    exponent=st.integers(min_value=-45, max_value=12),
    capital=st.booleans(),
)
def test_json_exponent_numbers_match_exact_arithmetic(
    mantissa: int, exponent: int, capital: bool
) -> None:
    text = f"{mantissa}{'E' if capital else 'e'}{exponent}"
    value = Fraction(mantissa) * Fraction(10) ** exponent
    expected = _expected_micro(value)
    if expected is None:
        with pytest.raises(CreditsError):
            micro_from_json_number(text)
    else:
        assert micro_from_json_number(text) == expected


# ------------------------------------------------------------------ money rounding


@pytest.mark.parametrize(
    ("amount", "digits", "expected"),
    [
        ("2.345", 2, "2.35"),
        ("2.344", 2, "2.34"),
        ("2.3", 2, "2.30"),
        ("0.005", 2, "0.01"),
        ("0.004999", 2, "0.00"),
        ("-2.345", 2, "-2.35"),  # half away from zero
        ("1234.5", 0, "1235"),  # KRW: no minor unit
        ("1234.49", 0, "1234"),
        ("0.0005", 3, "0.001"),
    ],
)
def test_round_half_up(amount: str, digits: int, expected: str) -> None:
    result = round_half_up(Decimal(amount), digits)
    assert str(result) == expected
    assert result.as_tuple().exponent == -digits
