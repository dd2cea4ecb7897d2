"""Usage queries: parameter validation, and totals and series from month rows and day values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.buckets import BUCKET_MS, to_epoch_ms
from core.days import DAY_MS, Bucket, DayUsage
from core.localtime import parse_tz
from core.usage import (
    MAX_SERIES_POINTS,
    AppDays,
    EdgeUsage,
    QueryError,
    Totals,
    UsageQuery,
    edge_parts,
    parse_usage_query,
    query_edges,
    render_usage,
)
from tests.core.support import FAST, HOUR, THOROUGH


def answer_of(query: UsageQuery, apps: Mapping[str, AppDays]) -> dict[str, Any]:
    """The rendered answer, parsed back."""
    parsed: dict[str, Any] = orjson.loads(render_usage(query, apps))
    return parsed


NY = parse_tz("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return to_epoch_ms(datetime(year, month, day, hour, minute, tzinfo=UTC))


def query(
    start: str | None = "2026-03-07",
    end: str | None = "2026-03-10",
    tz: str | None = "America/New_York",
    window: str | None = "day",
    group_by: str | None = None,
    default_tz: str = "UTC",
) -> UsageQuery:
    return parse_usage_query("acme", start, end, tz, window, group_by, default_tz)


# ------------------------------------------------------------------ parameters


def test_parse_defaults() -> None:
    q = parse_usage_query("acme", "2026-03-07", "2026-03-10", None, None, None, "Asia/Seoul")
    assert q.account_id == "acme"
    assert q.tz.key == "Asia/Seoul"  # the account's contract zone
    assert q.window == "none"
    assert q.group_by == "app"
    assert q.start_ms == utc(2026, 3, 6, 15)  # local midnight in Seoul
    assert q.end_ms == utc(2026, 3, 9, 15)
    assert q.edges == [q.start_ms, q.end_ms]
    assert parse_usage_query("a", "2026-03-07", "2026-03-08", "", None, "", "UTC").tz.key == "UTC"


def test_parse_dates_and_instants() -> None:
    q = query(window="hour", group_by="none")
    assert (q.start_ms, q.end_ms) == (utc(2026, 3, 7, 5), utc(2026, 3, 10, 4))
    assert q.window == "hour"
    assert q.group_by == "none"
    q = query("2026-03-08T00:15:00-05:00", "2026-03-08T06:45Z", window="month")
    assert (q.start_ms, q.end_ms) == (utc(2026, 3, 8, 5, 15), utc(2026, 3, 8, 6, 45))
    q = query("2026-01-01", "2026-01-02", tz="Asia/Kolkata")  # 18:30Z: on the grid
    assert q.start_ms == utc(2025, 12, 31, 18, 30)
    q = query("2026-09-06", "2026-09-07", tz="America/Santiago")  # starts at 01:00 local
    assert q.start_ms == utc(2026, 9, 6, 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "2026-03-08T00:10:00Z"}, r"^from: .*15-minute boundary"),
        ({"end": "2026-03-09T00:00:30Z"}, r"^to: .*15-minute boundary"),
        ({"end": "2026-03-09T00:00:00.001Z"}, r"^to: .*15-minute boundary"),
        ({"start": "2026-03-08T00:00:00+05:40"}, r"^from: .*15-minute boundary"),
        ({"start": "2026-03-08T00:00:00"}, r"^from: .*no UTC offset"),
        ({"end": "2026-03-09T00:00"}, r"^to: .*no UTC offset"),
        ({"start": "2026-02-30"}, r"^from: .*not a valid date"),
        ({"start": "last week"}, r"^from: .*neither an RFC 3339 instant nor a YYYY-MM-DD date"),
        ({"start": None}, "from and to are required"),
        ({"end": ""}, "from and to are required"),
        ({"start": "2026-03-10", "end": "2026-03-10"}, r"from must be before to"),
        ({"start": "2026-03-10", "end": "2026-03-09"}, r"from must be before to"),
        ({"tz": "Mars/Olympus_Mons"}, r"^tz: unknown time zone"),
        ({"tz": "America"}, r"^tz: unknown time zone"),  # a tz-database directory
        ({"tz": "../etc/passwd"}, r"^tz: unknown time zone"),
        ({"window": "week"}, r"window must be one of none, hour, day, month; got 'week'"),
        ({"window": ""}, r"window must be one of"),
        ({"window": "Day"}, r"window must be one of"),
        ({"group_by": "model"}, r"group_by must be app or none; got 'model'"),
    ],
)
def test_parse_errors_are_query_errors_with_clear_messages(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(QueryError, match=message):
        query(**kwargs)


def test_query_error_is_a_value_error() -> None:
    assert issubclass(QueryError, ValueError)


def test_hour_window_point_limit() -> None:
    start = utc(2026, 1, 1)
    ok = query("2026-01-01T00:00Z", _iso(start + MAX_SERIES_POINTS * HOUR), window="hour")
    assert ok.end_ms - ok.start_ms == MAX_SERIES_POINTS * HOUR
    with pytest.raises(QueryError, match="too many hour windows"):
        query("2026-01-01T00:00Z", _iso(start + (MAX_SERIES_POINTS + 1) * HOUR), window="hour")
    # The same range without hour windows is fine.
    assert query("2026-01-01T00:00Z", _iso(start + (MAX_SERIES_POINTS + 1) * HOUR)).window == "day"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def test_day_window_point_limit() -> None:
    with pytest.raises(QueryError, match="too many"):
        query("1980-01-01", "2100-01-01", tz="UTC", window="day")


def test_sub_millisecond_bound_is_not_aligned() -> None:
    with pytest.raises(QueryError, match="sub-millisecond"):
        query("2026-03-08T00:00:00.0009Z", "2026-03-09T00:00:00Z")


# ------------------------------------------------------------------ AppDays


def app_days(buckets: list[tuple[int, int, int]]) -> AppDays:
    """``(bucket start ms, calls, micro)`` triples as the day values the view serves."""
    days: dict[int, dict[int, Bucket]] = {}
    for start, calls, micro in buckets:
        days.setdefault(start // DAY_MS, {})[start % DAY_MS // BUCKET_MS] = Bucket(calls, micro)
    return AppDays.from_days({day: DayUsage(1, slots) for day, slots in days.items()})


def test_app_days_sums_between_instants() -> None:
    series = app_days([(BUCKET_MS * 2, 1, 10), (0, 2, 20), (BUCKET_MS * 5, 4, 40)])
    assert series.between(0, BUCKET_MS * 6) == (3, 7, 70)
    assert series.between(0, BUCKET_MS * 5) == (2, 3, 30)  # a bucket at ``end`` is excluded
    assert series.between(BUCKET_MS * 2, BUCKET_MS * 3) == (1, 1, 10)  # one at ``start`` is in
    assert series.between(BUCKET_MS * 3, BUCKET_MS * 5) == (0, 0, 0)
    assert series.between(-BUCKET_MS * 9, -BUCKET_MS) == (0, 0, 0)
    assert series.between(BUCKET_MS * 9, BUCKET_MS * 10) == (0, 0, 0)
    empty = app_days([])
    assert empty.between(0, BUCKET_MS) == (0, 0, 0)
    # What the view keeps: the totals of each day of its month...
    ((month_index, month),) = series.months.items()
    assert (month.buckets[:2], month.calls[:2], month.micro[:2]) == ((3, 0), (7, 0), (70, 0))
    assert (len(month.buckets), sum(month.buckets), sum(month.calls), sum(month.micro)) == (
        31,
        3,
        7,
        70,
    )
    # ...and prefix sums over the day's buckets for edges inside the day, under its month.
    assert series.edges[month_index][(0, 3)] == (2, 3, 30)


@FAST
@given(
    st.lists(st.tuples(st.integers(0, 80 * 96), st.integers(0, 9), st.integers(0, 10**18))),
    st.integers(0, 80 * 96),
    st.integers(0, 80 * 96),
)
def test_app_days_between_matches_a_brute_force_sum_across_months(
    rows: list[tuple[int, int, int]], a: int, b: int
) -> None:
    base = utc(2026, 1, 20)  # 80 days: four UTC months, one of them February
    buckets = {base + slot * BUCKET_MS: (calls, micro) for slot, calls, micro in rows}
    lo, hi = base + min(a, b) * BUCKET_MS, base + max(a, b) * BUCKET_MS
    inside = [value for start, value in buckets.items() if lo <= start < hi]
    expected = (len(inside), sum(c for c, _ in inside), sum(m for _, m in inside))
    series = app_days([(start, calls, micro) for start, (calls, micro) in buckets.items()])
    assert series.between(lo, hi) == expected


# ------------------------------------------------------------------ render_usage


def _apps() -> dict[str, AppDays]:
    return {
        "bot": app_days(
            [
                (utc(2026, 3, 7, 4, 45), 9, 9_000_000),  # Mar 6 23:45 EST: before the range
                (utc(2026, 3, 7, 12), 2, 1_500_000),  # Mar 7
                (utc(2026, 3, 8, 6), 1, 250_000),  # Mar 8 01:00 EST
                (utc(2026, 3, 9, 3, 45), 1, 1),  # Mar 8 23:45 EDT: last bucket of the 23h day
                (utc(2026, 3, 10, 4), 5, 5_000_000),  # at ``to``: excluded
            ]
        ),
        "alpha": app_days([(utc(2026, 3, 9, 4), 3, 3_000_000)]),  # Mar 9 00:00 EDT
        "zeta": app_days([(utc(2026, 3, 1), 1, 1)]),  # outside: not listed
    }


def test_render_usage_daily_across_spring_forward() -> None:
    answer = answer_of(query(), _apps())
    assert answer == {
        "account_id": "acme",
        "from": "2026-03-07T00:00:00-05:00",
        "to": "2026-03-10T00:00:00-04:00",
        "tz": "America/New_York",
        "window": "day",
        "group_by": "app",
        "total": {"calls": 7, "credits": "4.750001"},
        "apps": [
            {"app_id": "alpha", "calls": 3, "credits": "3"},
            {"app_id": "bot", "calls": 4, "credits": "1.750001"},
        ],
        "series": [
            {
                "start": "2026-03-07T00:00:00-05:00",
                "end": "2026-03-08T00:00:00-05:00",
                "calls": 2,
                "credits": "1.5",
                "apps": [{"app_id": "bot", "calls": 2, "credits": "1.5"}],
            },
            {
                "start": "2026-03-08T00:00:00-05:00",
                "end": "2026-03-09T00:00:00-04:00",
                "calls": 2,
                "credits": "0.250001",
                "apps": [{"app_id": "bot", "calls": 2, "credits": "0.250001"}],
            },
            {
                "start": "2026-03-09T00:00:00-04:00",
                "end": "2026-03-10T00:00:00-04:00",
                "calls": 3,
                "credits": "3",
                "apps": [{"app_id": "alpha", "calls": 3, "credits": "3"}],
            },
        ],
    }


def test_render_usage_group_by_none_and_window_none() -> None:
    answer = answer_of(query(group_by="none"), _apps())
    assert answer["apps"] is None
    assert answer["total"] == {"calls": 7, "credits": "4.750001"}
    assert all(point["apps"] is None for point in answer["series"])
    assert [point["calls"] for point in answer["series"]] == [2, 2, 3]

    flat = answer_of(query(window=None), _apps())
    assert flat["series"] == []
    assert flat["window"] == "none"
    assert flat["total"] == {"calls": 7, "credits": "4.750001"}


def test_render_usage_with_no_data() -> None:
    answer = answer_of(query(), {})
    assert answer["total"] == {"calls": 0, "credits": "0"}
    assert answer["apps"] == []
    assert [(p["calls"], p["credits"], p["apps"]) for p in answer["series"]] == [(0, "0", [])] * 3


@pytest.mark.parametrize(
    "name", ['say "hi"', "100%s %d %%", "back\\slash\n", "ünïcødé ✓", "nul\0x", "\x01\u2028"]
)
def test_series_text_carries_any_app_id(name: str) -> None:
    # The series is rendered from templates split at NULs; an app id is tenant text and goes
    # in escaped, whatever it holds.
    apps = {name: app_days([(utc(2026, 3, 8, 12), 2, 1_500_000)]), "b": _apps()["bot"]}
    series = answer_of(query(), apps)["series"]
    assert [app["app_id"] for app in series[1]["apps"]] == sorted(["b", name])
    assert {"app_id": name, "calls": 2, "credits": "1.5"} in series[1]["apps"]
    assert [app["app_id"] for app in series[0]["apps"]] == ["b"]  # no bucket of it that day
    flat = answer_of(query(group_by="none"), apps)["series"]
    assert [point["apps"] for point in flat] == [None] * len(series)
    assert [point["calls"] for point in flat] == [
        sum(app["calls"] for app in point["apps"]) for point in series
    ]


@pytest.mark.parametrize("name", ['say "hi"', "100%s %d %%", "nul\0x"])
def test_series_where_every_app_has_usage_in_every_window(name: str) -> None:
    # Rendered as one template per point rather than per app: the same answer as a brute sum.
    start, end = utc(2026, 2, 25, 5), utc(2026, 3, 12, 5)  # New York midnights, across months
    buckets = {
        app: [(at, 1 + at % 7, at % 10**9 + shift) for at in range(start, end, 5 * HOUR)]
        for app, shift in ((name, 0), ("b", 10**18))
    }
    q = query("2026-02-25", "2026-03-12", group_by="app")
    answer = answer_of(q, {app: app_days(rows) for app, rows in buckets.items()})
    assert len(answer["series"]) == len(q.edges) - 1 == 15
    for point, (lo, hi) in zip(answer["series"], pairwise(q.edges), strict=True):
        _check(point, _brute(buckets, lo, hi))
        assert len(point["apps"]) == 2
    _check({**answer["total"], "apps": answer["apps"]}, _brute(buckets, start, end))


def test_zero_valued_bucket_still_lists_the_app() -> None:
    apps = {"quiet": app_days([(utc(2026, 3, 8, 12), 0, 0)])}
    assert answer_of(query(), apps)["apps"] == [{"app_id": "quiet", "calls": 0, "credits": "0"}]


def test_calls_beyond_64_bits_render_exactly() -> None:
    # A day's calls may reach 96 bits in the view; orjson alone refuses integers past 64.
    apps = {app: app_days([(utc(2026, 3, 8, 12), 2**64 - 1, 1)]) for app in ("a", "b")}
    answer = json.loads(render_usage(query(group_by="app"), apps))  # orjson reads them as floats
    assert answer["total"]["calls"] == 2 * (2**64 - 1)
    assert [row["calls"] for row in answer["apps"]] == [2**64 - 1] * 2
    assert answer["series"][1]["calls"] == 2 * (2**64 - 1)


def test_totals_beyond_one_event_bound_stay_exact() -> None:
    big = 10**9 * 10**6  # the largest single event, many times over
    apps = {"bot": app_days([(utc(2026, 3, 8, 12) + i * BUCKET_MS, 1, big + 1) for i in range(9)])}
    assert answer_of(query(), apps)["total"] == {
        "calls": 9,
        "credits": "9000000000.000009",
    }


# ------------------------------------------------------------------ against brute force

TZS = [
    "America/New_York",
    "Asia/Kolkata",
    "America/Santiago",
    "UTC",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Chatham",
]
BASE = utc(2026, 3, 6)  # three days around New York's spring-forward
SPAN = 5 * 96  # grid slots


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[UsageQuery, dict[str, list[tuple[int, int, int]]]]:
    apps: dict[str, list[tuple[int, int, int]]] = {}
    for app in draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True, max_size=4)):
        slots = draw(st.lists(st.integers(0, SPAN), unique=True, max_size=40))
        apps[app] = [
            (
                BASE + slot * BUCKET_MS,
                draw(st.integers(0, 1000)),
                draw(st.integers(0, 10**15)),
            )
            for slot in slots
        ]
    lo = draw(st.integers(0, SPAN - 1))
    hi = draw(st.integers(lo + 1, SPAN + 1))
    q = parse_usage_query(
        "acme",
        _iso(BASE + lo * BUCKET_MS),
        _iso(BASE + hi * BUCKET_MS),
        draw(st.sampled_from(TZS)),
        draw(st.sampled_from(["none", "hour", "day", "month"])),
        draw(st.sampled_from(["app", "none"])),
        "UTC",
    )
    return q, apps


def _brute(
    buckets: dict[str, list[tuple[int, int, int]]], start: int, end: int
) -> tuple[int, Decimal, dict[str, tuple[int, Decimal]]]:
    per_app = {}
    for app, rows in buckets.items():
        inside = [(calls, micro) for at, calls, micro in rows if start <= at < end]
        if inside:
            per_app[app] = (
                sum(calls for calls, _ in inside),
                sum((Decimal(micro) / 10**6 for _, micro in inside), Decimal(0)),
            )
    calls = sum(c for c, _ in per_app.values())
    credits = sum((d for _, d in per_app.values()), Decimal(0))
    return calls, credits, per_app


def _check(
    part: dict[str, Any], expected: tuple[int, Decimal, dict[str, tuple[int, Decimal]]]
) -> None:
    calls, credits, per_app = expected
    assert part["calls"] == calls
    assert Decimal(part["credits"]) == credits
    rows = part["apps"]
    if rows is not None:
        assert [row["app_id"] for row in rows] == sorted(per_app)
        for row in rows:
            assert (row["calls"], Decimal(row["credits"])) == per_app[row["app_id"]]


@THOROUGH
@given(scenarios())
def test_render_usage_matches_a_brute_force_decimal_sum(
    scenario: tuple[UsageQuery, dict[str, list[tuple[int, int, int]]]],
) -> None:
    q, buckets = scenario
    apps = {app: app_days(rows) for app, rows in buckets.items()}
    answer = answer_of(q, apps)
    total = _brute(buckets, q.start_ms, q.end_ms)
    _check({**answer["total"], "apps": answer["apps"]}, total)
    if q.group_by == "none":
        assert answer["apps"] is None
    if q.window == "none":
        assert answer["series"] == []
        return
    edges = q.edges
    assert len(answer["series"]) == len(edges) - 1
    for point, (lo, hi) in zip(answer["series"], pairwise(edges), strict=True):
        assert point["start"] == datetime.fromtimestamp(lo / 1000, q.tz).isoformat()
        assert point["end"] == datetime.fromtimestamp(hi / 1000, q.tz).isoformat()
        _check(point, _brute(buckets, lo, hi))
    # The series partitions the range: its points add up to the total.
    assert sum(p["calls"] for p in answer["series"]) == answer["total"]["calls"]
    assert sum(Decimal(p["credits"]) for p in answer["series"]) == Decimal(
        answer["total"]["credits"]
    )


@FAST
@given(st.integers(min_value=0, max_value=10**18), st.integers(min_value=0, max_value=10**18))
def test_credit_strings_are_exact_decimal_renderings(a: int, b: int) -> None:
    apps = {"x": app_days([(utc(2026, 3, 8, 12), 1, a), (utc(2026, 3, 8, 13), 1, b)])}
    credits = answer_of(query(), apps)["total"]["credits"]
    assert Decimal(credits) * 10**6 == a + b


@THOROUGH
@given(scenarios())
def test_the_usage_before_each_edge_is_all_a_view_must_read(
    scenario: tuple[UsageQuery, dict[str, list[tuple[int, int, int]]]],
) -> None:
    """What the view supplies (month rows, and per edge inside a day with usage, the day's
    usage before it; nothing of the days themselves) gives the same answer as whole days."""
    q, buckets = scenario
    whole = {app: app_days(rows) for app, rows in buckets.items()}
    read = {}
    for app, days in whole.items():
        edges: dict[int, dict[tuple[int, int], Totals]] = {}
        for edge in edge_parts(q.edges):
            month_edges = days.edges.get(edge.month, {})
            if edge.slot and (edge.day, edge.slot) in month_edges:
                key = (edge.day, edge.slot)
                edges.setdefault(edge.month, {})[key] = month_edges[key]
        read[app] = AppDays(days.months, edges)
    assert answer_of(q, read) == answer_of(q, whole)
    # As the view returns them: a record for every edge asked (inside a day, with usage or
    # not), in the query's order, one month at a time.
    asked: dict[int, list[tuple[int, int]]] = {}
    for edge in edge_parts(q.edges):
        if edge.slot:
            asked.setdefault(edge.month, []).append((edge.day, edge.slot))
    as_read = {}
    for app, days in whole.items():
        columns = {}
        for month, keys in asked.items():
            found = [read[app].edges.get(month, {}).get(key, (0, 0, 0)) for key in keys]
            columns[month] = EdgeUsage(keys, *zip(*found, strict=True))
        as_read[app] = AppDays(days.months, columns)
    assert answer_of(q, as_read) == answer_of(q, whole)


def test_edge_usage_reads_like_a_mapping_and_joins_later_reads() -> None:
    first = EdgeUsage([(1, 4), (2, 4)], (1, 2), (10, 20), (100, 200))
    assert dict(first) == {(1, 4): (1, 10, 100), (2, 4): (2, 20, 200)}
    assert first.get((3, 4)) is None
    later = EdgeUsage([(2, 4), (3, 8)], (5, 3), (50, 30), (500, 300))
    joined = first.joined(later)
    assert dict(joined) == {(1, 4): (1, 10, 100), (2, 4): (5, 50, 500), (3, 8): (3, 30, 300)}
    assert EdgeUsage([], (), (), ()).joined(later) is later


def test_window_edges_are_computed_once_for_every_account_asking_the_same_calendar() -> None:
    first = parse_usage_query(
        "acme", "2026-01-01", "2026-12-01", "Asia/Kolkata", "day", None, "UTC"
    )
    other = parse_usage_query(
        "zeta", "2026-01-01", "2026-12-01", "Asia/Kolkata", "day", None, "UTC"
    )
    assert query_edges(first) is query_edges(other)
    assert list(query_edges(first)) == first.edges
