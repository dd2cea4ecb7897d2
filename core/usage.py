"""Usage queries: validated parameters, and totals and series computed from buckets.

An app's buckets are held as sorted starts with prefix sums, so the total of any aligned range
is two binary searches and a subtraction, whatever the range's length or time zone.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal, cast, get_args
from zoneinfo import ZoneInfo

from core.buckets import is_aligned
from core.localtime import Window, boundaries, iso_local, parse_bound, parse_tz, quoted
from core.money import format_micro

__all__ = (
    "MAX_SERIES_POINTS",
    "SHORTEST_WINDOW_MS",
    "AppSeries",
    "GroupBy",
    "QueryError",
    "UsageQuery",
    "compute_usage",
    "parse_usage_query",
)

GroupBy = Literal["app", "none"]
MAX_SERIES_POINTS = 10_000


class QueryError(ValueError):
    """A usage query the caller must fix (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """A validated usage query: an aligned half-open range in a zone, a window and a grouping."""

    account_id: str
    start_ms: int
    end_ms: int
    tz: ZoneInfo
    window: Window
    group_by: GroupBy

    @property
    def edges(self) -> list[int]:
        """Window edges, both ends included."""
        return boundaries(self.start_ms, self.end_ms, self.tz, self.window)


def parse_usage_query(
    account_id: str,
    start: str | None,
    end: str | None,
    tz_name: str | None,
    window: str | None,
    group_by: str | None,
    default_tz: str,
    max_points: int = MAX_SERIES_POINTS,
) -> UsageQuery:
    """Check and normalise the query string of ``GET /v1/accounts/{account}/usage``.

    ``max_points`` bounds the windows of the series (a live stream allows fewer).
    """
    try:
        tz = parse_tz(tz_name or default_tz)
    except ValueError as error:
        raise QueryError(f"tz: {error}") from None
    if window is None:
        window = "none"
    if window not in get_args(Window):
        raise QueryError(f"window must be one of none, hour, day, month; got {quoted(window)}")
    group_by = group_by or "app"
    if group_by not in get_args(GroupBy):
        raise QueryError(f"group_by must be app or none; got {quoted(group_by)}")
    if not start or not end:
        raise QueryError("from and to are required (RFC 3339 instants or YYYY-MM-DD dates)")
    start_ms = _bound("from", start, tz)
    end_ms = _bound("to", end, tz)
    if start_ms >= end_ms:
        raise QueryError("from must be before to (the range is half-open [from, to))")
    query = UsageQuery(
        account_id, start_ms, end_ms, tz, cast(Window, window), cast(GroupBy, group_by)
    )
    shortest = SHORTEST_WINDOW_MS.get(window)
    if shortest and (end_ms - start_ms) // shortest > max_points:
        raise QueryError(f"too many {window} windows; at most {max_points} points per answer")
    return query


# The shortest a window can be (DST and month lengths), to bound the points of an answer.
SHORTEST_WINDOW_MS = {"hour": 3_600_000, "day": 23 * 3_600_000, "month": 28 * 86_400_000}


def _bound(name: str, text: str, tz: ZoneInfo) -> int:
    try:
        instant = parse_bound(text, tz)
    except ValueError as error:
        raise QueryError(f"{name}: {error}") from None
    if not is_aligned(instant):
        raise QueryError(
            f"{name}: {quoted(text)} must fall on a 15-minute boundary "
            "(:00, :15, :30 or :45, no seconds)"
        )
    return instant


@dataclass(frozen=True, slots=True)
class AppSeries:
    """One app's buckets: sorted starts and prefix sums of calls and micro-credits."""

    starts: list[int]
    cum_calls: list[int]
    cum_micro: list[int]

    @classmethod
    def from_buckets(cls, buckets: Iterable[tuple[int, int, int]]) -> AppSeries:
        """Build from ``(bucket start ms, calls, micro)`` triples in any order."""
        starts: list[int] = []
        cum_calls = [0]
        cum_micro = [0]
        for start, calls, micro in sorted(buckets):
            starts.append(start)
            cum_calls.append(cum_calls[-1] + calls)
            cum_micro.append(cum_micro[-1] + micro)
        return cls(starts, cum_calls, cum_micro)

    def between(self, start_ms: int, end_ms: int) -> tuple[int, int, int]:
        """``(buckets, calls, micro)`` over ``[start_ms, end_ms)`` (both on the bucket grid)."""
        lo = bisect_left(self.starts, start_ms)
        hi = bisect_left(self.starts, end_ms)
        return (
            hi - lo,
            self.cum_calls[hi] - self.cum_calls[lo],
            self.cum_micro[hi] - self.cum_micro[lo],
        )


def _totals(calls: int, micro: int) -> dict[str, Any]:
    return {"calls": calls, "credits": format_micro(micro)}


def _per_app(
    apps: Mapping[str, AppSeries], start_ms: int, end_ms: int
) -> tuple[int, int, list[dict[str, Any]]]:
    calls_sum = micro_sum = 0
    rows = []
    for app_id in sorted(apps):
        count, calls, micro = apps[app_id].between(start_ms, end_ms)
        if count:
            calls_sum += calls
            micro_sum += micro
            rows.append({"app_id": app_id, **_totals(calls, micro)})
    return calls_sum, micro_sum, rows


def compute_usage(query: UsageQuery, apps: Mapping[str, AppSeries]) -> dict[str, Any]:
    """The body of a usage answer, without the freshness fields (``as_of``, ``lag``)."""
    grouped = query.group_by == "app"
    calls, micro, rows = _per_app(apps, query.start_ms, query.end_ms)
    series = []
    if query.window != "none":
        edges = query.edges
        for lo, hi in pairwise(edges):
            point_calls, point_micro, point_rows = _per_app(apps, lo, hi)
            point: dict[str, Any] = {
                "start": iso_local(lo, query.tz),
                "end": iso_local(hi, query.tz),
                **_totals(point_calls, point_micro),
            }
            point["apps"] = point_rows if grouped else None
            series.append(point)
    return {
        "account_id": query.account_id,
        "from": iso_local(query.start_ms, query.tz),
        "to": iso_local(query.end_ms, query.tz),
        "tz": query.tz.key,
        "window": query.window,
        "group_by": query.group_by,
        "total": _totals(calls, micro),
        "apps": rows if grouped else None,
        "series": series,
    }
