"""Usage queries: validated parameters, and totals and series computed from day values.

The math works on what the serving view keeps per app: the totals of each UTC day, a UTC month
at a time, and for a day that a window edge falls inside, the prefix sums of that day's
15-minute buckets. The usage up to any instant on the bucket grid is then a few lookups
(months before it, days of its month before it, buckets of its day before it), so a range's
total or a window of a local-calendar series is a subtraction, in any zone, whatever the
length: a one-year daily series reads about one value per day and edge, not 35,040 buckets.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from itertools import accumulate, chain, repeat
from operator import add, sub
from typing import Literal, NamedTuple, Protocol, cast, get_args
from zoneinfo import ZoneInfo

import orjson

from core.buckets import BUCKET_MS, is_aligned
from core.days import DAY_MS, Bucket, DayUsage
from core.localtime import Window, boundaries, iso_local, parse_bound, parse_tz, quoted
from core.money import format_micro, format_micros

__all__ = (
    "MAX_SERIES_POINTS",
    "SHORTEST_WINDOW_MS",
    "AppDays",
    "DaySlots",
    "Edge",
    "EdgeUsage",
    "GroupBy",
    "MonthDays",
    "QueryError",
    "SlotPrefix",
    "Totals",
    "UsageQuery",
    "aligned_bound",
    "edge_parts",
    "month_day",
    "parse_usage_query",
    "query_edges",
    "render_usage",
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
    start_ms = aligned_bound("from", start, tz)
    end_ms = aligned_bound("to", end, tz)
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


def aligned_bound(name: str, text: str, tz: ZoneInfo) -> int:
    """The range bound ``name`` (``from``, ``to``) in epoch ms, on the bucket grid.

    :class:`QueryError` for text that is not a time, or a time inside a bucket: a range cut
    there would be a guess, and every real UTC offset is a multiple of 15 minutes.
    """
    try:
        instant = parse_bound(text, tz)
    except ValueError as error:
        raise QueryError(f"{name}: {error}") from None
    if not is_aligned(instant):
        raise QueryError(
            f"{name}: {quoted(text)} must fall on a 15-minute boundary "
            "(:00, :15, :30 or :45, no seconds): buckets are 15 minutes long, so only aligned "
            "ranges are exact"
        )
    return instant


# ------------------------------------------------------------------ the math

Totals = tuple[int, int, int]
"""``(buckets, calls, micro)``: non-empty buckets, calls and micro-credits of a span."""

_ZERO: Totals = (0, 0, 0)
_ORDINAL_1970 = date(1970, 1, 1).toordinal()


class Edge(NamedTuple):
    """An instant on the bucket grid, split the way the view stores usage."""

    month: int
    """UTC month index: ``year * 12 + month - 1``."""
    day_of_month: int
    """1 to 31."""
    day: int
    """UTC day number (days since 1970-01-01)."""
    slot: int
    """15-minute slot within the day (0-95)."""


@lru_cache(maxsize=1 << 16)
def month_day(day: int) -> tuple[int, int]:
    """``(month index, day of month)`` of a UTC day number."""
    moment = date.fromordinal(day + _ORDINAL_1970)
    return moment.year * 12 + moment.month - 1, moment.day


def edge_parts(edges_ms: Sequence[int]) -> tuple[Edge, ...]:
    """Split instants (epoch ms on the bucket grid) into month, day and slot."""
    return _edge_parts(tuple(edges_ms))


# A query's edges are split twice (the reader asks for the months and days they fall in, the
# math walks them), and the edges of the same zone and range recur across queries.
@lru_cache(maxsize=1024)
def _edge_parts(edges_ms: tuple[int, ...]) -> tuple[Edge, ...]:
    parts = []
    for edge in edges_ms:
        day = edge // DAY_MS
        month, day_of_month = month_day(day)
        parts.append(Edge(month, day_of_month, day, edge % DAY_MS // BUCKET_MS))
    return tuple(parts)


class _MonthEdges(NamedTuple):
    """The edges of one UTC month, as the math walks them."""

    month: int
    before: list[int]
    """Per edge, the days of the month before it."""
    inside: list[tuple[int, int]]
    """Per edge, ``(day, slot)``: where in its day it falls (slot 0 at midnight)."""
    cut: tuple[tuple[int, int], ...]
    """The ``inside`` of the edges that fall inside a day (not on its midnight), in order:
    those a view reads the day's usage before."""


def _by_month(edges: Sequence[Edge]) -> list[_MonthEdges]:
    """Edges grouped by month."""
    groups: list[_MonthEdges] = []
    for month, day_of_month, day, slot in edges:
        if not groups or groups[-1].month != month:
            groups.append(_MonthEdges(month, [], [], ()))
        groups[-1].before.append(day_of_month - 1)
        groups[-1].inside.append((day, slot))
    return [group._replace(cut=tuple(at for at in group.inside if at[1])) for group in groups]


@lru_cache(maxsize=1024)
def _month_groups(edges_ms: tuple[int, ...]) -> tuple[_MonthEdges, ...]:
    """:func:`_by_month` of a query's edges, computed once (the groups are only read)."""
    return tuple(_by_month(_edge_parts(edges_ms)))


class DaySlots(Protocol):
    """The buckets of one UTC day, as prefix sums."""

    def before(self, slot: int) -> Totals:
        """Totals of the day's buckets in slots ``0 .. slot - 1``."""
        ...


class SlotPrefix:
    """:class:`DaySlots` built from a day's buckets."""

    __slots__ = ("_cum", "_slots")

    def __init__(self, slots: Mapping[int, Bucket]) -> None:
        self._slots = sorted(slots)
        cum = [_ZERO]
        for slot in self._slots:
            buckets, calls, micro = cum[-1]
            bucket = slots[slot]
            cum.append((buckets + 1, calls + bucket.calls, micro + bucket.micro))
        self._cum = cum

    def before(self, slot: int) -> Totals:
        """Totals of the day's buckets in slots ``0 .. slot - 1``."""
        return self._cum[bisect_left(self._slots, slot)]


@dataclass(frozen=True, slots=True)
class MonthDays:
    """An app's day totals in one UTC month: index ``i`` is day ``i + 1``.

    Each sequence has 31 elements (zero past the month's last day). The math prefix-sums them
    only for the months an edge falls in and adds the others whole.
    """

    buckets: Sequence[int]
    calls: Sequence[int]
    micro: Sequence[int]

    @classmethod
    def from_totals(cls, totals: Mapping[int, Totals]) -> MonthDays:
        """Build from ``day of month -> totals`` (days without usage may be left out)."""
        buckets, calls, micro = zip(*(totals.get(day, _ZERO) for day in range(1, 32)), strict=True)
        return cls(buckets, calls, micro)


class EdgeUsage(Mapping[tuple[int, int], Totals]):
    """``(day, slot)`` -> the usage of the day before the slot, for edges as a view reads them.

    Kept as the view returns them, a column each: when they are the edges a query cuts in that
    month, in its order, the math takes the columns whole instead of looking up each edge.
    """

    __slots__ = ("_index", "buckets", "calls", "edges", "micro")

    def __init__(
        self,
        edges: Sequence[tuple[int, int]],
        buckets: Sequence[int],
        calls: Sequence[int],
        micro: Sequence[int],
    ) -> None:
        self.edges = tuple(edges)
        self.buckets = buckets
        self.calls = calls
        self.micro = micro
        self._index: dict[tuple[int, int], int] | None = None

    def joined(self, later: EdgeUsage) -> EdgeUsage:
        """These edges and ``later``'s (read afterwards; an edge in both takes ``later``'s)."""
        if not self.edges:
            return later
        if not later.edges:
            return self
        merged = {**self, **later}
        buckets, calls, micro = zip(*merged.values(), strict=True)
        return EdgeUsage(list(merged), buckets, calls, micro)

    def __getitem__(self, key: tuple[int, int]) -> Totals:
        if self._index is None:
            self._index = {edge: at for at, edge in enumerate(self.edges)}
        at = self._index[key]
        return self.buckets[at], self.calls[at], self.micro[at]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.edges)

    def __len__(self) -> int:
        return len(self.edges)


class _DaysBefore(Mapping[tuple[int, int], Totals]):
    """``(day, slot)`` -> the usage of the day before the slot, from whole days' prefixes."""

    __slots__ = ("_days",)

    def __init__(self, days: Mapping[int, DaySlots]) -> None:
        self._days = days

    def __getitem__(self, key: tuple[int, int]) -> Totals:
        day, slot = key
        return self._days[day].before(slot)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        raise TypeError("the usage before any slot of any day: not enumerable")

    def __len__(self) -> int:
        raise TypeError("the usage before any slot of any day: not enumerable")


@dataclass(frozen=True, slots=True)
class AppDays:
    """One app's usage: day totals per UTC month, and the usage of some days before some slots.

    ``edges`` must hold, under the edge's UTC month, ``(day, slot)`` -> the usage of the day
    before the slot, for every edge asked of :meth:`at` that falls strictly inside a day with
    usage (not on its midnight): what the view reads, a month at a time, and keeps per month
    (an :class:`EdgeUsage`). Built from whole days, ``edges`` is computed from their bucket
    prefixes.
    """

    months: Mapping[int, MonthDays]
    edges: Mapping[int, Mapping[tuple[int, int], Totals]]

    @classmethod
    def from_days(cls, days: Mapping[int, DayUsage]) -> AppDays:
        """Build from absolute day values (``UTC day number -> DayUsage``)."""
        by_month: dict[int, dict[int, Totals]] = {}
        for day, usage in days.items():
            month, day_of_month = month_day(day)
            calls, micro = usage.total
            by_month.setdefault(month, {})[day_of_month] = (len(usage.slots), calls, micro)
        before = _DaysBefore({day: SlotPrefix(usage.slots) for day, usage in days.items()})
        return cls(
            {month: MonthDays.from_totals(totals) for month, totals in by_month.items()},
            dict.fromkeys(by_month, before),
        )

    def at(self, edges: Sequence[Edge]) -> list[Totals]:
        """Usage before each edge (edges ascending), counted from the first month held.

        Only differences between the results mean anything: they are the usage between edges.
        """
        return list(zip(*self._columns(_by_month(edges)), strict=True))

    def _columns(self, groups: Sequence[_MonthEdges]) -> tuple[list[int], list[int], list[int]]:
        """:meth:`at` as columns of buckets, calls and micro-credits (a month at a time)."""
        months = self.months
        order = sorted(months)
        next_month = 0
        base_buckets = base_calls = base_micro = 0
        buckets_at: list[int] = []
        calls_at: list[int] = []
        micro_at: list[int] = []
        for group in groups:
            while next_month < len(order) and order[next_month] < group.month:
                earlier = months[order[next_month]]
                base_buckets += sum(earlier.buckets)
                base_calls += sum(earlier.calls)
                base_micro += sum(earlier.micro)
                next_month += 1
            month = months.get(group.month)
            if month is None:
                buckets_at += repeat(base_buckets, len(group.before))
                calls_at += repeat(base_calls, len(group.before))
                micro_at += repeat(base_micro, len(group.before))
                continue
            # The usage before each day of the month, from the usage before the month.
            day_buckets = list(accumulate(month.buckets, initial=base_buckets))
            day_calls = list(accumulate(month.calls, initial=base_calls))
            day_micro = list(accumulate(month.micro, initial=base_micro))
            base_buckets, base_calls, base_micro = day_buckets[-1], day_calls[-1], day_micro[-1]
            next_month += 1  # this group's month was the next held one: later groups start after it
            cut = self._cut(group)
            if cut is None:
                buckets_at += map(day_buckets.__getitem__, group.before)
                calls_at += map(day_calls.__getitem__, group.before)
                micro_at += map(day_micro.__getitem__, group.before)
            else:
                buckets_at += map(add, map(day_buckets.__getitem__, group.before), cut[0])
                calls_at += map(add, map(day_calls.__getitem__, group.before), cut[1])
                micro_at += map(add, map(day_micro.__getitem__, group.before), cut[2])
        return buckets_at, calls_at, micro_at

    def _cut(self, group: _MonthEdges) -> tuple[Sequence[int], Sequence[int], Sequence[int]] | None:
        """Per edge of ``group``, its day's usage before it, as columns (None if none has any)."""
        found = self.edges.get(group.month)
        if not group.cut or found is None:
            return None
        if isinstance(found, EdgeUsage) and found.edges == group.cut:
            if len(group.cut) == len(group.inside):
                return found.buckets, found.calls, found.micro
            # Nothing before a midnight (slot 0): the columns' values go to the other edges.
            inside = [slot for _, slot in group.inside]
            return (
                _spread(found.buckets, inside),
                _spread(found.calls, inside),
                _spread(found.micro, inside),
            )
        # None at midnight nor in a day without usage, which ``edges`` may leave out.
        buckets, calls, micro = zip(*map(found.get, group.inside, repeat(_ZERO)), strict=True)
        return buckets, calls, micro

    def between(self, start_ms: int, end_ms: int) -> Totals:
        """Totals over ``[start_ms, end_ms)`` (both on the bucket grid)."""
        lo, hi = self.at(edge_parts((start_ms, end_ms)))
        return hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]


def _spread(column: Sequence[int], slots: Sequence[int]) -> list[int]:
    """``column``'s values in order at the non-zero ``slots``, 0 at the others."""
    values = iter(column)
    return [next(values) if slot else 0 for slot in slots]


def query_edges(query: UsageQuery) -> tuple[int, ...]:
    """:attr:`UsageQuery.edges`, computed once per range, zone and window.

    The reader and the math both ask, and dashboards of many accounts ask the same calendar
    (this month, in the same zone): the account is no part of the key.
    """
    return _edges(query.start_ms, query.end_ms, query.tz, query.window)


@lru_cache(maxsize=1024)
def _edges(start_ms: int, end_ms: int, tz: ZoneInfo, window: Window) -> tuple[int, ...]:
    return tuple(boundaries(start_ms, end_ms, tz, window))


# Window edges of the same zone recur across queries (days, months), and rendering them costs
# more than the sums between them.
_iso_local = lru_cache(maxsize=1 << 16)(iso_local)


def render_usage(query: UsageQuery, apps: Mapping[str, AppDays]) -> bytes:
    """The JSON body of a usage answer, without the freshness fields (``as_of``, ``lag``)."""
    edges = query_edges(query)
    groups = _month_groups(edges)
    names = sorted(apps)
    # Per app, the usage of each window between consecutive edges, as three columns; a long
    # series is mostly this and its rendering, so both work a column at a time.
    columns = []
    totals = []
    for name in names:
        buckets, calls, micro = apps[name]._columns(groups)
        columns.append(
            (
                list(map(sub, buckets[1:], buckets[:-1])),
                list(map(sub, calls[1:], calls[:-1])),
                list(map(sub, micro[1:], micro[:-1])),
            )
        )
        totals.append((buckets[-1] - buckets[0], calls[-1] - calls[0], micro[-1] - micro[0]))
    tz = query.tz
    series = _series(query, edges, names, columns) if query.window != "none" else []
    app_rows = [
        {"app_id": name, "calls": _json_count(calls), "credits": format_micro(micro)}
        for name, (buckets, calls, micro) in zip(names, totals, strict=True)
        if buckets
    ]
    return orjson.dumps(
        {
            "account_id": query.account_id,
            "from": _iso_local(query.start_ms, tz),
            "to": _iso_local(query.end_ms, tz),
            "tz": tz.key,
            "window": query.window,
            "group_by": query.group_by,
            "total": {
                "calls": _json_count(sum(calls for _, calls, _ in totals)),
                "credits": format_micro(sum(micro for _, _, micro in totals)),
            },
            "apps": app_rows if query.group_by == "app" else None,
            "series": series,
        }
    )


def _json_count(count: int) -> int | orjson.Fragment:
    """A count for orjson, which refuses integers past 64 bits (the view holds 96-bit calls)."""
    return count if count < 1 << 63 else orjson.Fragment(b"%d" % count)


_Column = tuple[list[int], list[int], list[int]]

# A series is rendered as JSON text here, one ``%`` format per column instead of a dict per cell
# for orjson to walk: a one-year daily per-app series has ~4,000 cells, and building and
# serialising them was most of its answer's CPU. Window edges are ISO texts and app ids are
# escaped by orjson, so nothing in a template needs escaping but a ``%`` in an app id.
_POINT_HEAD = '{"start":"%s","end":"%s","calls":%d,"credits":"%s","apps":'
_POINT = _POINT_HEAD + "%s},"
_CELL_TAIL = ',"calls":%d,"credits":"%s"}'


def _series(
    query: UsageQuery, edges: Sequence[int], names: list[str], columns: list[_Column]
) -> orjson.Fragment:
    """The points of a windowed answer (JSON), from each app's columns of window usage."""
    windows = len(edges) - 1
    rendered = [_iso_local(edge, query.tz) for edge in edges]
    calls_at = [0] * windows
    micro_at = [0] * windows
    for _, calls, micro in columns:
        calls_at = list(map(add, calls_at, calls))
        micro_at = list(map(add, micro_at, micro))
    totals: list[Sequence[object]] = [
        rendered[:-1],
        rendered[1:],
        calls_at,
        format_micros(micro_at),
    ]
    if query.group_by != "app":
        points = (_POINT * windows) % _by_window([*totals, ["null"] * windows])
    elif names and not any(0 in buckets for buckets, _, _ in columns):
        points = _every_app_points(names, columns, windows, totals)
    else:
        points = (_POINT * windows) % _by_window([*totals, _app_rows(names, columns, windows)])
    return orjson.Fragment("[" + points[:-1] + "]")


def _by_window(columns: Sequence[Sequence[object]]) -> tuple[object, ...]:
    """The values of equally long columns, window by window: what a repeated template takes."""
    return tuple(chain.from_iterable(zip(*columns, strict=True)))


def _every_app_points(
    names: list[str], columns: list[_Column], windows: int, totals: list[Sequence[object]]
) -> str:
    """The points of a per-app series where every app has usage in every window, in one format.

    The common case of a long series of active apps: one template of the whole point, instead
    of each app's cells rendered apart and then joined window by window.
    """
    cells = ",".join(_cell_template(name) for name in names)
    point = _POINT_HEAD + "[" + cells + "]},"
    values = list(totals)
    for _, calls, micro in columns:
        values += (calls, format_micros(micro))
    return (point * windows) % _by_window(values)


def _cell_template(name: str) -> str:
    """An app's cell of a point as a ``%`` template of its calls and credits."""
    return '{"app_id":' + orjson.dumps(name).decode().replace("%", "%%") + _CELL_TAIL


def _app_rows(names: list[str], columns: list[_Column], windows: int) -> list[str]:
    """Per window, the JSON array of its apps' usage (apps without a bucket there left out).

    For a series where some app has no bucket in some window (the others take
    :func:`_every_app_points`): each app's cells come from one template, split at NULs.
    """
    if not names:
        return ["[]"] * windows
    cells: list[list[str]] = []
    for name, (buckets, calls, micro) in zip(names, columns, strict=True):
        template = _cell_template(name) + "\0"
        texts = ((template * windows) % _by_window([calls, format_micros(micro)])).split("\0")
        texts.pop()  # after the last separator
        if 0 in buckets:
            texts = [text if seen else "" for seen, text in zip(buckets, texts, strict=True)]
        cells.append(texts)
    return ["[" + ",".join(filter(None, window)) + "]" for window in zip(*cells, strict=True)]
