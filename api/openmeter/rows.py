"""Answers to OpenMeter meter queries, made of creditflow's own usage answers. Pure.

A :class:`~api.openmeter.meters.MeterQuery` becomes one ``GET /v1/accounts/{a}/usage`` query
per account (:func:`usage_params`: same range, zone and window, grouped by app); the rows are
those answers regrouped (:func:`rows_of`), so an OpenMeter client and a ``/v1`` client always
see the same numbers. As in OpenMeter, a row exists only for a window and group with usage.
Values are exact: JSON numbers are written from the decimal text (never through a float).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson

from api.openmeter.meters import MeterQuery
from core.buckets import BUCKET_MS, iso_utc
from core.localtime import first_instant, iso_local, local
from core.money import MICRO, format_micro, micro_from_total

__all__ = ("Row", "answer_csv", "answer_json", "resolve_range", "rows_of", "usage_params")


def _floor(instant_ms: int, query: MeterQuery) -> int:
    """The start of the window holding ``instant_ms`` (local calendar of the query's zone)."""
    instant_ms -= instant_ms % BUCKET_MS
    if query.window == "hour":
        while local(instant_ms, query.tz).minute:
            instant_ms -= BUCKET_MS
        return instant_ms
    if query.window in ("day", "month"):
        day = local(instant_ms, query.tz).date()
        return first_instant(day.replace(day=1) if query.window == "month" else day, query.tz)
    return instant_ms


def _ceil(instant_ms: int, query: MeterQuery) -> int:
    """The end of the window holding the instant just before ``instant_ms``."""
    if query.window == "none":
        return instant_ms + -instant_ms % BUCKET_MS
    start = _floor(instant_ms - 1, query)
    if query.window == "hour":
        edge = start + BUCKET_MS
        while local(edge, query.tz).minute:
            edge += BUCKET_MS
        return edge
    day = local(start, query.tz).date()
    if query.window == "month":
        following = day.replace(year=day.year + day.month // 12, month=day.month % 12 + 1)
    else:
        following = day + timedelta(days=1)
    return first_instant(following, query.tz)


def resolve_range(query: MeterQuery, extent: tuple[int, int] | None) -> tuple[int, int] | None:
    """The queried range; a missing bound is the data's edge, widened to whole windows.

    ``extent`` is ``(first bucket start, last bucket end)`` of the queried accounts' usage
    (None without usage). None when nothing can be in the range.
    """
    start, end = query.start_ms, query.end_ms
    if start is None or end is None:
        if extent is None:
            return None
        if start is None:
            start = _floor(extent[0], query)
        if end is None:
            end = _ceil(extent[1], query)
    return (start, end) if start < end else None


def usage_params(query: MeterQuery, start_ms: int, end_ms: int) -> dict[str, str]:
    """The ``/v1`` usage query string of one account's share of the meter query."""
    return {
        "from": iso_utc(start_ms),
        "to": iso_utc(end_ms),
        "tz": query.tz.key,
        "window": query.window,
        "group_by": "app",
    }


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a meter query answer; ``subject``/``app_id`` None when not grouped by them."""

    window_start: str
    window_end: str
    subject: str | None
    app_id: str | None
    calls: int
    micro: int


def _rfc3339(text: str) -> str:
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def rows_of(
    query: MeterQuery, start_ms: int, end_ms: int, answers: Mapping[str, Mapping[str, Any]]
) -> list[Row]:
    """The rows of the meter query, from each account's ``/v1`` usage answer."""
    by_subject = "subject" in query.group_by
    by_app = "app_id" in query.group_by
    windows: list[tuple[str, str, list[tuple[str, Mapping[str, Any]]]]] = []
    if query.window == "none":
        start, end = iso_local(start_ms, query.tz), iso_local(end_ms, query.tz)
        windows.append(
            (start, end, [(a, app) for a, answer in answers.items() for app in answer["apps"]])
        )
    else:
        first = next(iter(answers.values()), None)
        for index, point in enumerate(first["series"] if first else []):
            contributions = [
                (account, app)
                for account, answer in answers.items()
                for app in answer["series"][index]["apps"]
            ]
            windows.append((point["start"], point["end"], contributions))
    rows = []
    for start, end, contributions in windows:
        groups: dict[tuple[str | None, str | None], list[int]] = {}
        for account, app in contributions:
            if not query.apps.admits(app["app_id"]):
                continue
            key = (account if by_subject else None, app["app_id"] if by_app else None)
            sums = groups.setdefault(key, [0, 0])
            sums[0] += app["calls"]
            sums[1] += micro_from_total(app["credits"])
        for (subject, app_id), (calls, micro) in sorted(
            groups.items(), key=lambda item: (item[0][0] or "", item[0][1] or "")
        ):
            rows.append(Row(_rfc3339(start), _rfc3339(end), subject, app_id, calls, micro))
    return rows


def _value_text(query: MeterQuery, row: Row) -> str:
    return format_micro(row.micro) if query.meter.slug == "credits" else str(row.calls)


def answer_json(query: MeterQuery, rows: list[Row]) -> bytes:
    """OpenMeter's ``MeterQueryResult`` as JSON bytes (``from``/``to`` as requested)."""
    body: dict[str, Any] = {}
    if query.start_ms is not None:
        body["from"] = _rfc3339(iso_local(query.start_ms, query.tz))
    if query.end_ms is not None:
        body["to"] = _rfc3339(iso_local(query.end_ms, query.tz))
    if query.window_size is not None:
        body["windowSize"] = query.window_size
    body["data"] = [
        {
            "value": orjson.Fragment(_value_text(query, row).encode()),
            "windowStart": row.window_start,
            "windowEnd": row.window_end,
            "subject": row.subject,
            "groupBy": {} if row.app_id is None else {"app_id": row.app_id},
        }
        for row in rows
    ]
    return orjson.dumps(body)


def answer_csv(query: MeterQuery, rows: list[Row]) -> str:
    """OpenMeter's CSV: ``window_start,window_end[,subject][,app_id],value``.

    Values have six decimals, as OpenMeter prints them; credits have at most six, so the text
    is exact.
    """
    by_subject = "subject" in query.group_by
    keys = [key for key in query.group_by if key != "subject"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["window_start", "window_end", *(["subject"] if by_subject else []), *keys, "value"]
    )
    for row in rows:
        whole, fraction = (
            divmod(row.micro, MICRO) if query.meter.slug == "credits" else (row.calls, 0)
        )
        writer.writerow(
            [
                row.window_start,
                row.window_end,
                *([row.subject or ""] if by_subject else []),
                *([row.app_id or ""] if keys else []),
                f"{whole}.{fraction:06d}",
            ]
        )
    return out.getvalue()
