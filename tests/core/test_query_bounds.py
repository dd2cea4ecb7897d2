"""Query bounds: one sub-millisecond rule, supported dates, bounded searches (finding 12)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.buckets import BUCKET_MS, to_epoch_ms
from core.localtime import FIRST_YEAR, OffGridOffset, boundaries, first_instant, parse_tz
from core.usage import QueryError, UsageQuery, parse_usage_query
from tests.core.support import FAST

KIRITIMATI = parse_tz("Pacific/Kiritimati")
MONROVIA = parse_tz("Africa/Monrovia")


def _query(start: str, end: str, tz: str = "UTC", window: str = "hour") -> UsageQuery:
    return parse_usage_query("acme", start, end, tz, window, None, "UTC")


@pytest.mark.parametrize(
    "fraction", [".0001", ".0000001", ".000000001", ".0000000000000000001", ".1230001"]
)
def test_finding_12_any_nonzero_sub_millisecond_digit_is_a_400(fraction: str) -> None:
    with pytest.raises(QueryError, match="sub-millisecond"):
        _query(f"2026-01-01T00:00:00{fraction}Z", "2026-01-02T00:00:00Z")


@pytest.mark.parametrize("fraction", [".000", ".0000000", ".000000000000"])
def test_finding_12_zero_sub_millisecond_digits_are_fine(fraction: str) -> None:
    query = _query(f"2026-01-01T00:00:00{fraction}Z", "2026-01-02T00:00:00Z")
    assert query.start_ms == to_epoch_ms(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("tz", "start", "end"),
    [
        ("Pacific/Kiritimati", "1970-01-01", "1970-01-02"),
        ("Pacific/Kiritimati", "1979-01-01T00:00:00Z", "1979-01-02T00:00:00Z"),
        ("Africa/Monrovia", "1971-06-01", "1971-06-02"),
        ("UTC", "1979-12-31", "1980-01-02"),
    ],
)
def test_finding_12_dates_before_the_earliest_supported_are_a_400(
    tz: str, start: str, end: str
) -> None:
    with pytest.raises(QueryError, match=f"years {FIRST_YEAR} to"):
        _query(start, end, tz)


def test_finding_12_off_grid_offsets_fail_fast_instead_of_searching_for_years() -> None:
    """Below the query layer the searches are bounded: an error, never a 24-hour "hour"."""
    start = to_epoch_ms(datetime(1970, 1, 1, tzinfo=UTC))
    with pytest.raises(OffGridOffset, match="Pacific/Kiritimati"):
        boundaries(start, start + 24 * 3600 * 1000, KIRITIMATI, "hour")
    with pytest.raises(OffGridOffset, match="Africa/Monrovia"):
        first_instant(date(1971, 6, 1), MONROVIA)


@FAST
@given(
    tz=st.sampled_from([KIRITIMATI, MONROVIA]),
    day=st.dates(min_value=date(FIRST_YEAR, 1, 1), max_value=date(2030, 12, 31)),
)
def test_from_1980_those_zones_have_exact_hours_and_days(tz: ZoneInfo, day: date) -> None:
    first = first_instant(day, tz)
    edges = boundaries(first, first + 24 * 3600 * 1000, tz, "hour")
    assert all(edge % BUCKET_MS == 0 for edge in edges)
    assert all(b - a <= 3600 * 1000 for a, b in pairwise(edges))


def test_error_messages_quote_input_cut_short() -> None:
    with pytest.raises(QueryError) as info:
        _query("x" * 100_000, "2026-01-02")
    assert len(str(info.value)) < 300
    with pytest.raises(QueryError) as info:
        _query("2026-01-01", "2026-01-02", tz="A/" + "b" * 100_000)
    assert len(str(info.value)) < 300
