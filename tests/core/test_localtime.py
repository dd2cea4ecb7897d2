"""Local calendars: zones, range bounds, and DST-aware hour/day/month window edges."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.buckets import BUCKET_MS, to_epoch_ms
from core.localtime import (
    Window,
    boundaries,
    first_instant,
    iso_local,
    local,
    parse_bound,
    parse_tz,
)
from tests.core.support import FAST, HOUR

NY = parse_tz("America/New_York")
SANTIAGO = parse_tz("America/Santiago")
KOLKATA = parse_tz("Asia/Kolkata")
KATHMANDU = parse_tz("Asia/Kathmandu")
LORD_HOWE = parse_tz("Australia/Lord_Howe")
APIA = parse_tz("Pacific/Apia")
UTC_ZONE = parse_tz("UTC")
SEOUL = parse_tz("Asia/Seoul")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return to_epoch_ms(datetime(year, month, day, hour, minute, tzinfo=UTC))


# ------------------------------------------------------------------ zones


@pytest.mark.parametrize("name", ["UTC", "Asia/Seoul", "America/New_York", "Etc/GMT+5"])
def test_parse_tz(name: str) -> None:
    assert parse_tz(name).key == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Mars/Olympus_Mons",
        "/etc/localtime",
        "../../etc/passwd",
        "Asia/../Asia/Seoul",
        ".hidden",
        "America",  # a directory of the tz database: used to escape as IsADirectoryError
        "Asia",
        "x" * 300,  # used to escape as OSError (file name too long)
        "zone.tab",
        "America/New_York\x00",
    ],
)
def test_parse_tz_rejects_with_a_value_error(name: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        parse_tz(name)


# ------------------------------------------------------------------ bounds


@pytest.mark.parametrize(
    ("text", "tz", "expected"),
    [
        ("2026-03-08", NY, utc(2026, 3, 8, 5)),
        ("2026-03-09", NY, utc(2026, 3, 9, 4)),  # after spring-forward: EDT
        ("2026-11-01", NY, utc(2026, 11, 1, 4)),
        ("2026-11-02", NY, utc(2026, 11, 2, 5)),
        ("2026-01-01", KOLKATA, utc(2025, 12, 31, 18, 30)),
        ("2026-01-01", KATHMANDU, utc(2025, 12, 31, 18, 15)),
        ("2026-09-06", SANTIAGO, utc(2026, 9, 6, 4)),  # midnight skipped: 01:00 -03
        ("2026-01-01", UTC_ZONE, utc(2026, 1, 1)),
        (" 2026-01-01 ", SEOUL, utc(2025, 12, 31, 15)),
        ("2026-03-08T00:00:00Z", NY, utc(2026, 3, 8)),
        ("2026-03-08T00:00Z", NY, utc(2026, 3, 8)),
        ("2026-03-08t00:00:00z", NY, utc(2026, 3, 8)),
        ("2026-03-08 09:00:00+09:00", NY, utc(2026, 3, 8)),
        ("2026-03-08T05:30:00+05:30", NY, utc(2026, 3, 8)),
        ("2026-03-08T00:00:00.000-00:00", NY, utc(2026, 3, 8)),
        ("2026-03-08T00:00:00.250Z", NY, utc(2026, 3, 8) + 250),
    ],
)
def test_parse_bound(text: str, tz: ZoneInfo, expected: int) -> None:
    assert parse_bound(text, tz) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-03-08T00:00:00", "no UTC offset"),
        ("2026-03-08T00:00", "no UTC offset"),
        ("2026-02-30", "not a valid date"),
        ("2026-13-01", "not a valid date"),
        ("2026-03-08T25:00:00Z", "not a valid RFC 3339 instant"),
        ("2026-03-08T00:00:00+24:00", "not a valid RFC 3339 instant"),
        ("yesterday", "neither an RFC 3339 instant nor a YYYY-MM-DD date"),
        ("2026/03/08", "neither"),
        ("1709856000000", "neither"),
        ("", "neither"),
        ("2026-3-8", "neither"),
    ],
)
def test_parse_bound_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_bound(text, NY)


# ------------------------------------------------------------------ first instants


@pytest.mark.parametrize(
    ("day", "tz", "instant", "wall"),
    [
        (date(2026, 3, 8), NY, utc(2026, 3, 8, 5), "2026-03-08T00:00:00-05:00"),
        (date(2026, 11, 1), NY, utc(2026, 11, 1, 4), "2026-11-01T00:00:00-04:00"),
        (date(2026, 1, 1), KOLKATA, utc(2025, 12, 31, 18, 30), "2026-01-01T00:00:00+05:30"),
        (date(2026, 9, 6), SANTIAGO, utc(2026, 9, 6, 4), "2026-09-06T01:00:00-03:00"),
        # Santiago falls back at midnight (00:00 -03 -> 23:00 -04): Apr 4 has 25 hours.
        (date(2026, 4, 4), SANTIAGO, utc(2026, 4, 4, 3), "2026-04-04T00:00:00-03:00"),
        (date(2026, 4, 5), SANTIAGO, utc(2026, 4, 5, 4), "2026-04-05T00:00:00-04:00"),
    ],
)
def test_first_instant(day: date, tz: ZoneInfo, instant: int, wall: str) -> None:
    got = first_instant(day, tz)
    assert got == instant
    assert iso_local(got, tz) == wall


def test_iso_local() -> None:
    assert iso_local(utc(2026, 3, 8, 5), NY) == "2026-03-08T00:00:00-05:00"
    assert iso_local(utc(2026, 3, 8, 7), NY) == "2026-03-08T03:00:00-04:00"
    assert iso_local(utc(2025, 12, 31, 18, 30), KOLKATA) == "2026-01-01T00:00:00+05:30"
    assert iso_local(utc(2026, 1, 1), UTC_ZONE) == "2026-01-01T00:00:00+00:00"


# ------------------------------------------------------------------ window edges


def _hours(edges: list[int]) -> list[float]:
    return [(b - a) / HOUR for a, b in pairwise(edges)]


def _walls(edges: list[int], tz: ZoneInfo) -> list[str]:
    return [iso_local(edge, tz)[11:] for edge in edges]


def test_window_none_is_the_range() -> None:
    assert boundaries(utc(2026, 1, 1), utc(2026, 2, 1), NY, "none") == [
        utc(2026, 1, 1),
        utc(2026, 2, 1),
    ]


def test_new_york_days_around_dst() -> None:
    spring = boundaries(parse_bound("2026-03-07", NY), parse_bound("2026-03-10", NY), NY, "day")
    assert spring == [
        utc(2026, 3, 7, 5),
        utc(2026, 3, 8, 5),
        utc(2026, 3, 9, 4),
        utc(2026, 3, 10, 4),
    ]
    assert _hours(spring) == [24, 23, 24]
    fall = boundaries(parse_bound("2026-10-31", NY), parse_bound("2026-11-03", NY), NY, "day")
    assert _hours(fall) == [24, 25, 24]


def test_new_york_hours_on_the_23_hour_day() -> None:
    edges = boundaries(parse_bound("2026-03-08", NY), parse_bound("2026-03-09", NY), NY, "hour")
    assert len(edges) - 1 == 23
    assert set(_hours(edges)) == {1}
    walls = _walls(edges, NY)
    assert walls[:4] == ["00:00:00-05:00", "01:00:00-05:00", "03:00:00-04:00", "04:00:00-04:00"]
    assert not any(wall.startswith("02:") for wall in walls)


def test_new_york_hours_on_the_25_hour_day() -> None:
    edges = boundaries(parse_bound("2026-11-01", NY), parse_bound("2026-11-02", NY), NY, "hour")
    assert len(edges) - 1 == 25
    assert set(_hours(edges)) == {1}
    # The repeated 01:00 hour is two windows, one per offset.
    assert _walls(edges, NY)[:4] == [
        "00:00:00-04:00",
        "01:00:00-04:00",
        "01:00:00-05:00",
        "02:00:00-05:00",
    ]


def test_santiago_day_without_midnight_and_day_with_25_hours() -> None:
    start, end = parse_bound("2026-09-05", SANTIAGO), parse_bound("2026-09-08", SANTIAGO)
    edges = boundaries(start, end, SANTIAGO, "day")
    assert edges == [utc(2026, 9, 5, 4), utc(2026, 9, 6, 4), utc(2026, 9, 7, 3), utc(2026, 9, 8, 3)]
    assert _hours(edges) == [24, 23, 24]
    assert _walls(edges, SANTIAGO)[1] == "01:00:00-03:00"
    april = boundaries(
        parse_bound("2026-04-04", SANTIAGO), parse_bound("2026-04-06", SANTIAGO), SANTIAGO, "day"
    )
    assert _hours(april) == [25, 24]


def test_half_hour_zone_edges() -> None:
    start, end = parse_bound("2026-01-01", KOLKATA), parse_bound("2026-01-03", KOLKATA)
    days = boundaries(start, end, KOLKATA, "day")
    assert days == [utc(2025, 12, 31, 18, 30), utc(2026, 1, 1, 18, 30), utc(2026, 1, 2, 18, 30)]
    hours = boundaries(start, start + 3 * HOUR, KOLKATA, "hour")
    assert [datetime.fromtimestamp(h / 1000, UTC).minute for h in hours] == [30, 30, 30, 30]
    quarter = boundaries(
        parse_bound("2026-01-01", KATHMANDU), parse_bound("2026-01-02", KATHMANDU), KATHMANDU, "day"
    )
    assert quarter == [utc(2025, 12, 31, 18, 15), utc(2026, 1, 1, 18, 15)]


def test_lord_howe_half_hour_dst_hour_windows() -> None:
    # 2026-10-04 02:00 +10:30 jumps to 02:30 +11:00: the wall never shows 02:00, so the local
    # hour starting 01:00 runs to 03:00 and lasts 1.5 real hours.
    edges = boundaries(
        parse_bound("2026-10-04", LORD_HOWE),
        parse_bound("2026-10-04T06:00:00+11:00", LORD_HOWE),
        LORD_HOWE,
        "hour",
    )
    assert _walls(edges, LORD_HOWE) == [
        "00:00:00+10:30",
        "01:00:00+10:30",
        "03:00:00+11:00",
        "04:00:00+11:00",
        "05:00:00+11:00",
        "06:00:00+11:00",
    ]
    assert _hours(edges) == [1, 1.5, 1, 1, 1]


def test_partial_windows_at_both_ends() -> None:
    start = utc(2026, 3, 8, 5, 15)  # 00:15 EST
    end = utc(2026, 3, 8, 8, 45)  # 04:45 EDT
    edges = boundaries(start, end, NY, "hour")
    assert _walls(edges, NY) == [
        "00:15:00-05:00",
        "01:00:00-05:00",
        "03:00:00-04:00",
        "04:00:00-04:00",
        "04:45:00-04:00",
    ]
    day = boundaries(utc(2026, 3, 7, 12), utc(2026, 3, 9, 12), NY, "day")
    assert day == [utc(2026, 3, 7, 12), utc(2026, 3, 8, 5), utc(2026, 3, 9, 4), utc(2026, 3, 9, 12)]


def test_month_edges() -> None:
    assert boundaries(utc(2026, 1, 15), utc(2026, 4, 1), UTC_ZONE, "month") == [
        utc(2026, 1, 15),
        utc(2026, 2, 1),
        utc(2026, 3, 1),
        utc(2026, 4, 1),
    ]
    ny = boundaries(parse_bound("2026-02-01", NY), parse_bound("2026-05-01", NY), NY, "month")
    assert ny == [utc(2026, 2, 1, 5), utc(2026, 3, 1, 5), utc(2026, 4, 1, 4), utc(2026, 5, 1, 4)]
    rollover = boundaries(utc(2025, 11, 20), utc(2026, 2, 2), SEOUL, "month")
    assert [iso_local(edge, SEOUL)[:10] for edge in rollover[1:-1]] == [
        "2025-12-01",
        "2026-01-01",
        "2026-02-01",
    ]


def test_a_range_inside_one_window_has_just_its_ends() -> None:
    start, end = utc(2026, 3, 8, 6), utc(2026, 3, 8, 6, 30)
    for window in ("hour", "day", "month"):
        assert boundaries(start, end, NY, window) == [start, end]


def test_skipped_local_date_makes_no_empty_window() -> None:
    # Samoa skipped 2011-12-30: 29th 23:59:59 -10:00 was followed by 31st 00:00 +14:00, so the
    # 30th and the 31st share a first instant. Edges must stay strictly increasing.
    edges = boundaries(
        parse_bound("2011-12-29", APIA), parse_bound("2012-01-02", APIA), APIA, "day"
    )
    assert edges == sorted(set(edges))
    assert _hours(edges) == [24, 24, 24]
    assert [iso_local(edge, APIA)[:10] for edge in edges] == [
        "2011-12-29",
        "2011-12-31",
        "2012-01-01",
        "2012-01-02",
    ]


# ------------------------------------------------------------------ against brute force

ZONES = [NY, SANTIAGO, KOLKATA, KATHMANDU, LORD_HOWE, UTC_ZONE, parse_tz("Europe/London")]
DST_DAYS = [
    utc(2026, 3, 7),
    utc(2026, 3, 28),
    utc(2026, 4, 3),
    utc(2026, 9, 5),
    utc(2026, 10, 3),
    utc(2026, 10, 24),
    utc(2026, 10, 31),
]


def _brute_hours(start: int, end: int, tz: ZoneInfo) -> list[int]:
    inner = [t for t in range(start + BUCKET_MS, end, BUCKET_MS) if local(t, tz).minute == 0]
    return [start, *inner, end]


def _brute_days(start: int, end: int, tz: ZoneInfo) -> list[int]:
    """Each local date's first instant: the earliest grid instant whose wall shows that date."""
    firsts: dict[date, int] = {}
    for t in range(start - 2 * 24 * HOUR, end + BUCKET_MS, BUCKET_MS):
        firsts.setdefault(local(t, tz).date(), t)
    inner = sorted({t for t in firsts.values() if start < t < end})
    return [start, *inner, end]


@FAST
@given(
    tz=st.sampled_from(ZONES),
    day=st.sampled_from(DST_DAYS),
    offset=st.integers(min_value=0, max_value=4 * 96).map(lambda n: n * BUCKET_MS),
    length=st.integers(min_value=1, max_value=4 * 96).map(lambda n: n * BUCKET_MS),
    window=st.sampled_from(["hour", "day"]),
)
def test_edges_match_brute_force(
    tz: ZoneInfo, day: int, offset: int, length: int, window: Window
) -> None:
    start = day + offset
    end = start + length
    edges = boundaries(start, end, tz, window)
    assert edges[0] == start
    assert edges[-1] == end
    assert all(a < b for a, b in pairwise(edges))
    assert all(edge % BUCKET_MS == 0 for edge in edges)
    if window == "hour":
        assert edges == _brute_hours(start, end, tz)
    else:
        assert edges == _brute_days(start, end, tz)


@FAST
@given(
    tz=st.sampled_from(ZONES),
    day=st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)),
)
def test_first_instant_is_the_earliest_instant_of_the_date(tz: ZoneInfo, day: date) -> None:
    first = first_instant(day, tz)
    assert first % BUCKET_MS == 0
    assert local(first, tz).date() == day
    assert local(first - BUCKET_MS, tz).date() < day
    assert local(first, tz).time() <= time(1, 0)  # midnight, or 01:00 where it is skipped
