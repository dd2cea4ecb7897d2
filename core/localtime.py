"""Local calendars: time zones, date-or-instant bounds, and DST-aware hour/day/month windows.

All instants are epoch milliseconds on the 15-minute grid. A local day is the span from the
first instant of one local date to the first instant of the next, so it lasts 23 or 25 hours
across a DST change (and starts at 01:00 where midnight is skipped). Local hours are the
instants where the wall clock shows minute zero, so the repeated hour of a fall-back is two
windows, each one real hour long.
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
    "Window",
    "boundaries",
    "iso_local",
    "month_bounds",
    "parse_bound",
    "parse_tz",
)

Window = Literal["none", "hour", "day", "month"]

_HOUR_MS = 3_600_000
_SEARCH_MS = 3 * _HOUR_MS
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(?P<offset>[Zz]|[+-]\d{2}:?\d{2})?"
)


@lru_cache(maxsize=512)
def parse_tz(name: str) -> ZoneInfo:
    """The IANA zone called ``name``; ValueError for anything else."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a directory
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as Asia/Seoul"
        ) from None


FIRST_YEAR, LAST_YEAR = 1970, 9000
"""Bounds accepted in queries: far enough for any bill, and clear of datetime's year 9999."""


def parse_bound(text: str, tz: ZoneInfo) -> int:
    """Epoch ms of a range bound: an RFC 3339 instant, or a date (local midnight in ``tz``)."""
    text = text.strip()
    if _DATE.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a valid date") from None
        _check_year(day.year, text)
        return first_instant(day, tz)
    match = _INSTANT.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is neither an RFC 3339 instant nor a YYYY-MM-DD date")
    if match.group("offset") is None:
        raise ValueError(f"{text!r} has no UTC offset; add Z or +09:00, or pass a date")
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{text!r} is not a valid RFC 3339 instant") from None
    _check_year(moment.year, text)
    if moment.microsecond % 1000:
        raise ValueError(f"{text!r} has sub-millisecond digits; bounds are whole milliseconds")
    return to_epoch_ms(moment)


def _check_year(year: int, text: str) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"{text!r} is out of range (years {FIRST_YEAR} to {LAST_YEAR})")


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
        return guess
    instant = guess - _SEARCH_MS
    while _wall(instant, tz) < wall:
        instant += BUCKET_MS
    return instant


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
    edge = start_ms - start_ms % BUCKET_MS
    while local(edge, tz).minute != 0:
        edge += BUCKET_MS
    while edge < end_ms:
        yield edge
        following = edge + _HOUR_MS
        if local(following, tz).utcoffset() != local(edge, tz).utcoffset():
            # An offset change inside this hour may move the next minute-zero instant.
            following = edge + BUCKET_MS
            while local(following, tz).minute != 0:
                following += BUCKET_MS
        edge = following


def _calendar_edges(start_ms: int, end_ms: int, tz: ZoneInfo, window: Window) -> Iterator[int]:
    day = local(start_ms, tz).date()
    if window == "month":
        day = day.replace(day=1)
    while True:
        day = _next_month(day) if window == "month" else day + timedelta(days=1)
        edge = first_instant(day, tz)
        if edge >= end_ms:
            return
        yield edge


def month_bounds(instant_ms: int, tz: ZoneInfo) -> tuple[date, date]:
    """First day of the local month holding ``instant_ms`` and first day of the next month."""
    first = local(instant_ms, tz).date().replace(day=1)
    return first, _next_month(first)


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)
