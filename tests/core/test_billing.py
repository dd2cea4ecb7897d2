"""Billing periods (local, monthly or explicit) and the billing arithmetic, against hand-worked values."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.billing import Explicit, Monthly, Period, bill, crossed, period_at, previous_period
from core.buckets import iso_utc
from core.money import MICRO
from tests.core.support import FAST, HOUR, at, terms

MS = 1


def span(period: Period | None) -> tuple[str, str, str, str] | None:
    """A period as its local dates and UTC instants, for readable comparisons."""
    if period is None:
        return None
    return (
        period.start_date.isoformat(),
        period.end_date.isoformat(),
        iso_utc(period.start_ms),
        iso_utc(period.end_ms),
    )


def dates(period: Period | None) -> tuple[str, str] | None:
    """A period's local start and end dates."""
    if period is None:
        return None
    return period.start_date.isoformat(), period.end_date.isoformat()


# ------------------------------------------------------------------ monthly periods (UTC)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # Anchor on the 31st of a 31-day month; February (2026: 28 days) starts on the 28th.
        (at(2026, 1, 31), ("2026-01-31", "2026-02-28")),
        (at(2026, 2, 15, 12), ("2026-01-31", "2026-02-28")),
        (at(2026, 2, 27, 23, 59, 59), ("2026-01-31", "2026-02-28")),
        (at(2026, 2, 28), ("2026-02-28", "2026-03-31")),
        (at(2026, 3, 30, 23), ("2026-02-28", "2026-03-31")),
        (at(2026, 3, 31), ("2026-03-31", "2026-04-30")),
        (at(2026, 4, 30), ("2026-04-30", "2026-05-31")),
        (at(2026, 12, 31), ("2026-12-31", "2027-01-31")),
        (at(2026, 12, 30), ("2026-11-30", "2026-12-31")),
    ],
)
def test_monthly_anchor_on_the_31st_clamps_to_short_months(
    instant: int, expected: tuple[str, str]
) -> None:
    assert dates(period_at(terms(period=Monthly(date(2026, 1, 31))), instant)) == expected


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # 2028 is a leap year: February's period starts on the 29th.
        (at(2028, 2, 28, 23, 59, 59), ("2028-01-31", "2028-02-29")),
        (at(2028, 2, 29), ("2028-02-29", "2028-03-31")),
        (at(2028, 3, 30), ("2028-02-29", "2028-03-31")),
    ],
)
def test_monthly_anchor_on_the_31st_in_a_leap_year(instant: int, expected: tuple[str, str]) -> None:
    assert dates(period_at(terms(period=Monthly(date(2027, 12, 31))), instant)) == expected


@pytest.mark.parametrize(
    ("anchor", "instant", "expected"),
    [
        (date(2026, 1, 29), at(2026, 2, 27), ("2026-01-29", "2026-02-28")),
        (date(2026, 1, 29), at(2026, 2, 28), ("2026-02-28", "2026-03-29")),
        (date(2026, 1, 29), at(2026, 3, 29), ("2026-03-29", "2026-04-29")),
        (date(2028, 1, 29), at(2028, 2, 28), ("2028-01-29", "2028-02-29")),
        (date(2028, 1, 29), at(2028, 2, 29), ("2028-02-29", "2028-03-29")),
        (date(2026, 1, 30), at(2026, 2, 28), ("2026-02-28", "2026-03-30")),
        (date(2026, 1, 30), at(2026, 3, 29), ("2026-02-28", "2026-03-30")),
        (date(2026, 1, 30), at(2026, 4, 29), ("2026-03-30", "2026-04-30")),
        (date(2026, 1, 30), at(2026, 4, 30), ("2026-04-30", "2026-05-30")),
        (date(2028, 1, 30), at(2028, 2, 29), ("2028-02-29", "2028-03-30")),
    ],
)
def test_monthly_anchor_on_the_29th_and_30th(
    anchor: date, instant: int, expected: tuple[str, str]
) -> None:
    assert dates(period_at(terms(period=Monthly(anchor)), instant)) == expected


def test_periods_are_half_open() -> None:
    spec = terms(period=Monthly(date(2026, 1, 15)))
    start, end = at(2026, 11, 15), at(2026, 12, 15)
    november = period_at(spec, start)
    assert span(november) == (
        "2026-11-15",
        "2026-12-15",
        "2026-11-15T00:00:00Z",
        "2026-12-15T00:00:00Z",
    )
    assert period_at(spec, end - MS) == november
    assert november is not None and november.contains(start)
    assert not november.contains(end)
    assert november.contains(end - MS)
    assert not november.contains(start - MS)
    assert dates(period_at(spec, end)) == ("2026-12-15", "2027-01-15")
    assert dates(period_at(spec, start - MS)) == ("2026-10-15", "2026-11-15")


def test_no_period_before_the_anchor() -> None:
    spec = terms(period=Monthly(date(2026, 1, 31)))
    assert period_at(spec, at(2026, 1, 31) - MS) is None
    assert period_at(spec, at(2026, 1, 15)) is None
    assert period_at(spec, at(2025, 12, 31, 12)) is None
    assert period_at(spec, at(2020, 6, 1)) is None
    assert period_at(spec, at(2026, 1, 31)) is not None
    mid = terms(period=Monthly(date(2026, 3, 15)))
    assert period_at(mid, at(2026, 3, 14, 23, 59, 59)) is None
    assert period_at(mid, at(2026, 2, 20)) is None
    assert dates(period_at(mid, at(2026, 3, 15))) == ("2026-03-15", "2026-04-15")


# ------------------------------------------------------------------ time zones and DST


def test_seoul_periods_start_at_local_midnight() -> None:
    spec = terms(period=Monthly(date(2026, 1, 1)), tz="Asia/Seoul")
    # 2026-12-01T00:00+09:00 is 2026-11-30T15:00Z.
    assert span(period_at(spec, at(2026, 11, 30, 14, 59, 59))) == (
        "2026-11-01",
        "2026-12-01",
        "2026-10-31T15:00:00Z",
        "2026-11-30T15:00:00Z",
    )
    assert span(period_at(spec, at(2026, 11, 30, 15))) == (
        "2026-12-01",
        "2027-01-01",
        "2026-11-30T15:00:00Z",
        "2026-12-31T15:00:00Z",
    )
    # The first period begins at the anchor's local midnight: 2025-12-31T15:00Z.
    assert period_at(spec, at(2025, 12, 31, 15) - MS) is None
    assert dates(period_at(spec, at(2025, 12, 31, 15))) == ("2026-01-01", "2026-02-01")
    # The same instant is still November in UTC.
    utc = terms(period=Monthly(date(2026, 1, 1)))
    assert dates(period_at(utc, at(2026, 11, 30, 15))) == ("2026-11-01", "2026-12-01")


def test_new_york_period_spanning_the_november_fall_back() -> None:
    spec = terms(period=Monthly(date(2026, 3, 15)), tz="America/New_York")
    # DST ends 2026-11-01: Oct 15 00:00 is EDT (04:00Z), Nov 15 00:00 is EST (05:00Z).
    october = period_at(spec, at(2026, 11, 1, 12))
    assert span(october) == (
        "2026-10-15",
        "2026-11-15",
        "2026-10-15T04:00:00Z",
        "2026-11-15T05:00:00Z",
    )
    assert october is not None
    assert october.end_ms - october.start_ms == 31 * 24 * HOUR + HOUR
    # 04:30Z on Nov 15 is 23:30 EST on Nov 14: still the October period.
    assert period_at(spec, at(2026, 11, 15, 4, 30)) == october
    assert period_at(spec, at(2026, 11, 15, 5) - MS) == october
    assert span(period_at(spec, at(2026, 11, 15, 5))) == (
        "2026-11-15",
        "2026-12-15",
        "2026-11-15T05:00:00Z",
        "2026-12-15T05:00:00Z",
    )


def test_new_york_period_spanning_the_march_spring_forward() -> None:
    spec = terms(period=Monthly(date(2026, 1, 15)), tz="America/New_York")
    # DST starts 2026-03-08: Feb 15 00:00 is EST (05:00Z), Mar 15 00:00 is EDT (04:00Z).
    february = period_at(spec, at(2026, 3, 1))
    assert span(february) == (
        "2026-02-15",
        "2026-03-15",
        "2026-02-15T05:00:00Z",
        "2026-03-15T04:00:00Z",
    )
    assert february is not None
    assert february.end_ms - february.start_ms == 28 * 24 * HOUR - HOUR
    assert dates(period_at(spec, at(2026, 3, 15, 4, 30))) == ("2026-03-15", "2026-04-15")


# ------------------------------------------------------------------ explicit periods


def test_explicit_period() -> None:
    spec = terms(period=Explicit(date(2026, 10, 1), date(2027, 10, 1)), tz="Asia/Kolkata")
    # Midnight in Kolkata (+05:30) is 18:30Z the day before.
    expected = ("2026-10-01", "2027-10-01", "2026-09-30T18:30:00Z", "2027-09-30T18:30:00Z")
    assert span(period_at(spec, at(2026, 9, 30, 18, 30))) == expected
    assert span(period_at(spec, at(2027, 3, 1))) == expected
    assert span(period_at(spec, at(2027, 9, 30, 18, 30) - MS)) == expected
    assert period_at(spec, at(2026, 9, 30, 18, 30) - MS) is None  # before
    assert period_at(spec, at(2027, 9, 30, 18, 30)) is None  # at the end
    assert period_at(spec, at(2028, 1, 1)) is None  # after


def test_previous_period() -> None:
    spec = terms(period=Monthly(date(2026, 1, 31)))
    current = period_at(spec, at(2026, 4, 10))
    assert dates(current) == ("2026-03-31", "2026-04-30")
    assert current is not None
    before = previous_period(spec, current)
    assert dates(before) == ("2026-02-28", "2026-03-31")
    assert before is not None
    first = previous_period(spec, before)
    assert dates(first) == ("2026-01-31", "2026-02-28")
    assert first is not None
    assert previous_period(spec, first) is None  # the first period
    ny = terms(period=Monthly(date(2026, 3, 15)), tz="America/New_York")
    november = period_at(ny, at(2026, 11, 20))
    assert november is not None
    assert span(previous_period(ny, november)) == (
        "2026-10-15",
        "2026-11-15",
        "2026-10-15T04:00:00Z",
        "2026-11-15T05:00:00Z",
    )
    explicit = terms(period=Explicit(date(2026, 10, 1), date(2027, 10, 1)))
    only = period_at(explicit, at(2027, 1, 1))
    assert only is not None
    assert previous_period(explicit, only) is None


@FAST
@given(
    anchor=st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)),
    offset_ms=st.integers(min_value=0, max_value=3 * 366 * 24 * HOUR),
    tz=st.sampled_from(["UTC", "Asia/Seoul", "America/New_York", "Australia/Lord_Howe"]),
)
def test_monthly_periods_tile_time(anchor: date, offset_ms: int, tz: str) -> None:
    spec = terms(period=Monthly(anchor), tz=tz)
    first = period_at(spec, at(anchor.year, anchor.month, anchor.day) + 14 * HOUR)
    assert first is not None and first.start_date == anchor
    period = period_at(spec, first.start_ms + offset_ms)
    assert period is not None
    assert period.contains(first.start_ms + offset_ms)
    # Starts on the anchor's day, clamped to the month's length; ends a month later.
    following = period.end_date
    assert period.start_date.day == min(anchor.day, _month_days(period.start_date))
    assert following.day == min(anchor.day, _month_days(following))
    assert (following.year * 12 + following.month) - (
        period.start_date.year * 12 + period.start_date.month
    ) == 1
    # Contiguous with its neighbours.
    after = period_at(spec, period.end_ms)
    assert after is not None and after.start_ms == period.end_ms
    previous = previous_period(spec, period)
    if period.start_date == anchor:
        assert previous is None
    else:
        assert previous is not None and previous.end_ms == period.start_ms


def _month_days(day: date) -> int:
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


# ------------------------------------------------------------------ crossed()


def test_crossed_at_the_exact_integer_boundary() -> None:
    allotment = 200_000 * MICRO
    assert crossed(160_000 * MICRO, allotment, 80)
    assert not crossed(160_000 * MICRO - 1, allotment, 80)  # 159999.999999 credits
    assert crossed(100_000 * MICRO, allotment, 50)
    assert not crossed(100_000 * MICRO - 1, allotment, 50)
    assert crossed(200_000 * MICRO, allotment, 100)
    assert not crossed(200_000 * MICRO - 1, allotment, 100)
    assert crossed(300_000 * MICRO, allotment, 150)
    assert not crossed(300_000 * MICRO - 1, allotment, 150)


def test_crossed_with_a_fractional_threshold_amount() -> None:
    # 50% of 3 micro-credits is 1.5: 1 is below, 2 is above (no integer-division shortcut).
    assert not crossed(1, 3, 50)
    assert crossed(2, 3, 50)
    # 80% of 0.000007 credits = 5.6 micro.
    assert not crossed(5, 7, 80)
    assert crossed(6, 7, 80)


def test_crossed_with_a_zero_allotment() -> None:
    assert not crossed(0, 0, 50)
    assert crossed(1, 0, 50)
    assert crossed(1, 0, 100)
    assert not crossed(0, 200_000 * MICRO, 1)


@FAST
@given(
    used=st.integers(min_value=0, max_value=10**22),
    allotment=st.integers(min_value=0, max_value=10**21),
    threshold=st.integers(min_value=1, max_value=1000),
)
def test_crossed_agrees_with_exact_fractions(used: int, allotment: int, threshold: int) -> None:
    expected = used > 0 and Fraction(used) >= Fraction(threshold * allotment, 100)
    assert crossed(used, allotment, threshold) is expected


# ------------------------------------------------------------------ bill()


def test_bill_below_the_allotment() -> None:
    result = bill(terms(allotment="200000", rate="0.012"), 123_456_789_000)
    assert result == {
        "allotment": "200000",
        "used": "123456.789",
        "remaining": "76543.211",
        "overage_credits": "0",
        "overage_amount": "0.00",
        "currency": "USD",
        "percent_used": "61.73",  # 61.7283945
    }


def test_bill_at_the_allotment() -> None:
    result = bill(terms(allotment="200000"), 200_000 * MICRO)
    assert result["remaining"] == "0"
    assert result["overage_credits"] == "0"
    assert result["overage_amount"] == "0.00"
    assert result["percent_used"] == "100.00"


def test_bill_above_the_allotment() -> None:
    result = bill(terms(allotment="200000", rate="0.012"), 250_000_500_000)
    assert result == {
        "allotment": "200000",
        "used": "250000.5",
        "remaining": "0",
        "overage_credits": "50000.5",
        "overage_amount": "600.01",  # 50000.5 * 0.012 = 600.006
        "currency": "USD",
        "percent_used": "125.00",  # 125.00025
    }


def test_bill_with_nothing_used() -> None:
    result = bill(terms(allotment="200000"), 0)
    assert result["used"] == "0"
    assert result["remaining"] == "200000"
    assert result["overage_credits"] == "0"
    assert result["overage_amount"] == "0.00"
    assert result["percent_used"] == "0.00"


@pytest.mark.parametrize(
    ("currency", "digits", "rate", "overage", "amount"),
    [
        # USD, 2 digits: exact halves go up (half-even would give 0.00, 0.02, 0.04).
        ("USD", 2, "0.005", "1", "0.01"),
        ("USD", 2, "0.004999", "1", "0.00"),
        ("USD", 2, "0.025", "1", "0.03"),
        ("USD", 2, "0.045", "1", "0.05"),
        ("USD", 2, "0.0049999999", "1", "0.00"),
        ("USD", 2, "0.01", "0.5", "0.01"),  # 0.005
        ("USD", 2, "0.01", "0.499999", "0.00"),  # 0.00499999
        ("USD", 2, "0.012", "1000", "12.00"),
        # KRW, no minor unit.
        ("KRW", 0, "15", "1.5", "23"),  # 22.5
        ("KRW", 0, "1", "0.5", "1"),
        ("KRW", 0, "1", "2.5", "3"),
        ("KRW", 0, "1", "2.499999", "2"),
        ("KRW", 0, "15", "0.000001", "0"),  # 0.000015
        # BHD, 3 digits.
        ("BHD", 3, "0.0005", "1", "0.001"),
        ("BHD", 3, "0.0025", "1", "0.003"),
        ("BHD", 3, "0.0004999", "1", "0.000"),
        ("BHD", 3, "0.377", "10.5", "3.959"),  # 3.9585
    ],
)
def test_overage_amount_rounds_half_up_to_the_minor_unit(
    currency: str, digits: int, rate: str, overage: str, amount: str
) -> None:
    spec = terms(allotment="100", rate=rate, currency=currency, minor_digits=digits)
    result = bill(spec, spec.allotment_micro + int(Decimal(overage) * MICRO))
    assert result["overage_credits"] == overage
    assert result["overage_amount"] == amount
    assert result["currency"] == currency


def test_rates_with_many_decimals() -> None:
    spec = terms(allotment="0", rate="0.0000001234567")
    assert bill(spec, 1_000_000 * MICRO)["overage_amount"] == "0.12"  # 0.1234567
    assert bill(spec, 40_500_000 * MICRO)["overage_amount"] == "5.00"  # 4.99999635
    assert bill(spec, 40_499_999 * MICRO)["overage_amount"] == "5.00"  # 4.9999951...
    assert bill(spec, 40_499_900 * MICRO)["overage_amount"] == "5.00"  # 4.99998401...
    assert bill(spec, 36_450_000 * MICRO)["overage_amount"] == "4.50"  # 4.499996715
    # 5e-13 per credit: 1e10 credits cost exactly half a cent, one micro-credit less does not.
    tiny = terms(allotment="0", rate="0.0000000000005")
    assert bill(tiny, 10**10 * MICRO)["overage_amount"] == "0.01"
    assert bill(tiny, 10**10 * MICRO - 1)["overage_amount"] == "0.00"  # 0.0049999999999999995


def test_huge_allotments_and_usage_stay_exact() -> None:
    quadrillion = 10**15 * MICRO
    spec = dataclasses.replace(terms(rate="5000"), allotment_micro=quadrillion)
    over = bill(spec, quadrillion + 1)
    assert over["allotment"] == "1000000000000000"
    assert over["used"] == "1000000000000000.000001"
    assert over["remaining"] == "0"
    assert over["overage_credits"] == "0.000001"  # a float would have lost it entirely
    assert over["overage_amount"] == "0.01"  # 0.000001 * 5000 = 0.005
    assert over["percent_used"] == "100.00"
    under = bill(spec, quadrillion - 1)
    assert under["used"] == "999999999999999.999999"
    assert under["remaining"] == "0.000001"
    assert under["overage_credits"] == "0"
    assert under["percent_used"] == "100.00"  # 99.9999999999999999999...
    double = bill(dataclasses.replace(spec, rate=Decimal("0.0000001234567")), 2 * quadrillion)
    assert double["overage_credits"] == "1000000000000000"
    assert double["overage_amount"] == "123456700.00"
    assert double["percent_used"] == "200.00"


def test_zero_allotment_bills_everything_as_overage() -> None:
    spec = terms(allotment="0", rate="0.012")
    result = bill(spec, 12_345_600_000)
    assert result == {
        "allotment": "0",
        "used": "12345.6",
        "remaining": "0",
        "overage_credits": "12345.6",
        "overage_amount": "148.15",  # 148.1472
        "currency": "USD",
        "percent_used": None,
    }
    assert bill(spec, 0)["percent_used"] is None
    assert bill(spec, 0)["overage_amount"] == "0.00"


@pytest.mark.parametrize(
    ("allotment", "used_micro", "percent"),
    [
        ("200000", 24_690 * MICRO, "12.35"),  # 12.345: half-up, not half-even
        ("200000", 24_689_999_999, "12.34"),  # 12.3449999995
        ("200000", 1, "0.00"),
        ("200000", 10_000_000, "0.01"),  # 0.005
        ("200000", 9_999_999, "0.00"),  # 0.0049999995
        ("3", 2 * MICRO, "66.67"),
        ("3", 1 * MICRO, "33.33"),
        ("0.000001", 5, "500.00"),
        ("1000", 999_999_999, "100.00"),  # 99.9999999
    ],
)
def test_percent_used_rounds_half_up_to_hundredths(
    allotment: str, used_micro: int, percent: str
) -> None:
    assert bill(terms(allotment=allotment), used_micro)["percent_used"] == percent


def _half_up(value: Fraction, digits: int) -> Fraction:
    scaled = value * 10**digits
    return Fraction(int(scaled + Fraction(1, 2)) if scaled >= 0 else 0, 10**digits)


@FAST
@given(
    allotment=st.integers(min_value=0, max_value=10**21),
    used=st.integers(min_value=0, max_value=10**22),
    rate=st.decimals(min_value=Decimal("1e-12"), max_value=Decimal(100), places=12),
    digits=st.sampled_from([0, 2, 3]),
)
def test_bill_invariants(allotment: int, used: int, rate: Decimal, digits: int) -> None:
    spec = dataclasses.replace(terms(), allotment_micro=allotment, rate=rate, minor_digits=digits)
    result = bill(spec, used)
    remaining = Decimal(result["remaining"])
    overage = Decimal(result["overage_credits"])
    assert Decimal(result["used"]) * MICRO == used
    assert Decimal(result["allotment"]) - remaining + overage == Decimal(result["used"])
    assert remaining >= 0 and overage >= 0
    assert remaining == 0 or overage == 0
    amount = Decimal(result["overage_amount"])
    assert amount.as_tuple().exponent == -digits
    assert Fraction(amount) == _half_up(Fraction(overage) * Fraction(rate), digits)
    if allotment == 0:
        assert result["percent_used"] is None
    else:
        percent = Decimal(result["percent_used"])
        assert Fraction(percent) == _half_up(Fraction(used * 100, allotment), 2)
