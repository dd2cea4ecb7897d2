"""Local calendars: time zones, date-or-instant bounds, and DST-aware hour/day/month windows.

All instants are epoch milliseconds on the 15-minute grid. A local day is the span from the
first instant of one local date to the first instant of the next, so it lasts 23 or 25 hours
across a DST change (and starts at 01:00 where midnight is skipped). Local hours are the
instants where the wall clock shows minute zero, so the repeated hour of a fall-back is two
windows, each one real hour long.

That arithmetic holds only where every UTC offset is a multiple of 15 minutes, which is true of
every zone since 1979-10-01 (before it, e.g. Africa/Monrovia was -0:44:30 until 1972 and
Pacific/Kiritimati -10:40 until 1979). So bounds start in :data:`FIRST_YEAR` (1980), and every
search for a grid instant is bounded, failing with ValueError rather than scanning for years.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.buckets import BUCKET_MS, from_epoch_ms, to_epoch_ms

__all__ = (
    "FIRST_YEAR",
    "LAST_YEAR",
    "OffGridOffset",
    "Window",
    "boundaries",
    "iso_local",
    "month_bounds",
    "parse_bound",
    "parse_tz",
    "quoted",
)

Window = Literal["none", "hour", "day", "month"]

_HOUR_MS = 3_600_000
_SEARCH_MS = 3 * _HOUR_MS
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(?P<fraction>\.\d+)?)?"
    r"(?P<offset>[Zz]|[+-]\d{2}:?\d{2})?"
)
# A 15-minute grid instant with minute zero (or a local date's start) is at most an hour of
# grid steps away in any zone whose offsets are multiples of 15 minutes.
_MAX_GRID_STEPS = 2 * _SEARCH_MS // BUCKET_MS + 4
_GRID = timedelta(milliseconds=BUCKET_MS)


class OffGridOffset(ValueError):
    """The zone's offset near an instant is not a multiple of 15 minutes (before 1980)."""


def quoted(text: str) -> str:
    """``text`` for an error message, cut short: messages never echo unbounded input."""
    return repr(text if len(text) <= 64 else text[:64] + "...")


@lru_cache(maxsize=512)
def parse_tz(name: str) -> ZoneInfo:
    """The IANA zone called ``name``; ValueError for anything else."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        raise ValueError(f"unknown time zone {quoted(name)}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a directory
        raise ValueError(
            f"unknown time zone {quoted(name)}; use an IANA name such as Asia/Seoul"
        ) from None


FIRST_YEAR, LAST_YEAR = 1980, 9000
"""Years accepted in bounds: all offsets are on the 15-minute grid, clear of year 9999."""


def parse_bound(text: str, tz: ZoneInfo) -> int:
    """Epoch ms of a range bound: an RFC 3339 instant, or a date (local midnight in ``tz``)."""
    text = text.strip()
    if _DATE.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{quoted(text)} is not a valid date") from None
        _check_year(day.year, text)
        return first_instant(day, tz)
    match = _INSTANT.fullmatch(text)
    if match is None:
        raise ValueError(f"{quoted(text)} is neither an RFC 3339 instant nor a YYYY-MM-DD date")
    if match.group("offset") is None:
        raise ValueError(f"{quoted(text)} has no UTC offset; add Z or +09:00, or pass a date")
    # One rule for digits below the millisecond, however many: zeros are fine, anything else
    # is refused (datetime would silently drop a seventh digit and beyond).
    if (match.group("fraction") or "")[4:].strip("0"):
        raise ValueError(
            f"{quoted(text)} has sub-millisecond digits; bounds are whole milliseconds"
        )
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{quoted(text)} is not a valid RFC 3339 instant") from None
    _check_year(moment.year, text)
    return to_epoch_ms(moment)


def _check_year(year: int, text: str) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"{quoted(text)} is out of range (years {FIRST_YEAR} to {LAST_YEAR})")


def local(epoch_ms: int, tz: ZoneInfo) -> datetime:
    """Aware local datetime of an instant."""
    return from_epoch_ms(epoch_ms).astimezone(tz)


def iso_local(epoch_ms: int, tz: ZoneInfo) -> str:
    """RFC 3339 rendering of an instant with the zone's offset at that instant."""
    return local(epoch_ms, tz).isoformat()


def first_instant(day: date, tz: ZoneInfo) -> int:
    """The first instant of local date ``day`` (01:00 where midnight is skipped by DST)."""
    return _first_instant_at(datetime.combine(day, time()), tz)


def _first_instant_at(wall: datetime, tz: ZoneInfo) -> int:
    """Earliest 15-minute instant whose local wall time is at or after ``wall``."""
    guess = to_epoch_ms(wall.replace(tzinfo=tz))
    guess -= guess % BUCKET_MS
    if _wall(guess, tz) >= wall and _wall(guess - BUCKET_MS, tz) < wall:
        return _on_grid(guess, tz)
    instant = guess - _SEARCH_MS
    for _ in range(_MAX_GRID_STEPS):
        if _wall(instant, tz) >= wall:
            return _on_grid(instant, tz)
        instant += BUCKET_MS
    raise _off_grid(guess, tz)


def _on_grid(epoch_ms: int, tz: ZoneInfo) -> int:
    """``epoch_ms``, if the zone's offset there is a multiple of 15 minutes; else OffGridOffset."""
    offset = local(epoch_ms, tz).utcoffset()
    if offset is None or offset % _GRID:
        raise _off_grid(epoch_ms, tz)
    return epoch_ms


def _off_grid(epoch_ms: int, tz: ZoneInfo) -> OffGridOffset:
    return OffGridOffset(
        f"{tz.key} has an offset that is not a multiple of 15 minutes near "
        f"{from_epoch_ms(epoch_ms).date()}; use dates from {FIRST_YEAR} on"
    )


def _next_minute_zero(edge: int, tz: ZoneInfo) -> int:
    """The first grid instant at or after ``edge`` where the local clock shows minute zero."""
    for _ in range(_MAX_GRID_STEPS):
        if local(edge, tz).minute == 0:
            return _on_grid(edge, tz)
        edge += BUCKET_MS
    raise _off_grid(edge, tz)


def _wall(epoch_ms: int, tz: ZoneInfo) -> datetime:
    return local(epoch_ms, tz).replace(tzinfo=None)


def boundaries(start_ms: int, end_ms: int, tz: ZoneInfo, window: Window) -> list[int]:
    """Window edges covering ``[start_ms, end_ms)``: the two ends plus every local boundary."""
    inner: Iterator[int]
    if window == "none":
        inner = iter(())
    elif window == "hour":
        inner = _hour_edges(start_ms, end_ms, tz)
    else:
        inner = _calendar_edges(start_ms, end_ms, tz, window)
    edges = [start_ms]
    for edge in inner:
        # Strictly increasing: a skipped local date (Pacific/Apia 2011-12-30) shares its first
        # instant with the next date and must not become an empty window.
        if edges[-1] < edge < end_ms:
            edges.append(edge)
    edges.append(end_ms)
    return edges


def _hour_edges(start_ms: int, end_ms: int, tz: ZoneInfo) -> Iterator[int]:
    edge = _next_minute_zero(start_ms - start_ms % BUCKET_MS, tz)
    while edge < end_ms:
        yield edge
        following = edge + _HOUR_MS
        if local(following, tz).utcoffset() != local(edge, tz).utcoffset():
            # An offset change inside this hour may move the next minute-zero instant.
            following = _next_minute_zero(edge + BUCKET_MS, tz)
        edge = following


# Daily and monthly edges of the same zone recur across queries (dashboards ask about recent
# dates in a few zones), and finding the first instant of a date costs ~5 us of zone lookups:
# a year of daily edges ~2 ms. A pure function of its arguments, so it is kept.
_first_instant = lru_cache(maxsize=1 << 15)(first_instant)


def _calendar_edges(start_ms: int, end_ms: int, tz: ZoneInfo, window: Window) -> Iterator[int]:
    day = local(start_ms, tz).date()
    if window == "month":
        day = day.replace(day=1)
    while True:
        day = _next_month(day) if window == "month" else day + timedelta(days=1)
        edge = _first_instant(day, tz)
        if edge >= end_ms:
            return
        yield edge


def month_bounds(instant_ms: int, tz: ZoneInfo) -> tuple[date, date]:
    """First day of the local month holding ``instant_ms`` and first day of the next month."""
    first = local(instant_ms, tz).date().replace(day=1)
    return first, _next_month(first)


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)
