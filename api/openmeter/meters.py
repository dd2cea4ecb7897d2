"""OpenMeter meters over creditflow's buckets: the two meters and their query parameters. Pure.

creditflow aggregates every call event into 15-minute buckets of ``calls`` and ``credits`` per
(account, app), so it has exactly two meters, ``credits`` (SUM of credits) and ``calls`` (SUM
of calls, i.e. a COUNT of calls), both groupable by ``subject`` (the account) and ``app_id``.
This module turns OpenMeter query parameters (a query string in either ``filterGroupBy``
encoding, or a POST body) into a :class:`MeterQuery`, and refuses with :class:`QueryError`
what cannot be answered exactly. :mod:`api.openmeter.rows` answers it.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast
from zoneinfo import ZoneInfo

from core.events import is_id
from core.excerpt import excerpt
from core.localtime import Window, parse_tz
from core.usage import QueryError, aligned_bound

__all__ = (
    "GROUP_KEYS",
    "METERS",
    "AppFilter",
    "Meter",
    "MeterQuery",
    "QueryError",
    "find_meter",
    "meter_json",
    "parse_body",
    "parse_query_string",
)

Measure = Literal["credits", "calls"]
GROUP_KEYS: Final = ("subject", "app_id")
WINDOW_SIZES: Final[dict[str, Window]] = {"HOUR": "hour", "DAY": "day", "MONTH": "month"}
_MAX_FILTER_TEXT: Final = 4096  # a filterGroupBy literal longer than this is not a filter
_MAX_VALUES: Final = 100  # values per filter and subjects per query, as OpenMeter's own limit
_CREATED: Final = "2026-01-01T00:00:00Z"  # the meters are built in: they never change


@dataclass(frozen=True, slots=True)
class Meter:
    """One of the two built-in meters."""

    id: str
    slug: Measure
    name: str
    description: str


METERS: Final = {
    "credits": Meter(
        "01JCF0000000000000000CRED1",
        "credits",
        "Credits",
        "Credits consumed (SUM of data.credits), exact to 6 decimal places.",
    ),
    "calls": Meter(
        "01JCF0000000000000000CA115",
        "calls",
        "Calls",
        "Calls made (SUM of data.calls, default 1 per event: a COUNT of calls).",
    ),
}


def find_meter(id_or_slug: str) -> Meter | None:
    """The meter with this slug or id."""
    return METERS.get(id_or_slug) or next(
        (meter for meter in METERS.values() if meter.id == id_or_slug), None
    )


def meter_json(meter: Meter) -> dict[str, Any]:
    """The meter as OpenMeter's ``Meter`` schema."""
    return {
        "id": meter.id,
        "slug": meter.slug,
        "name": meter.name,
        "description": meter.description,
        "aggregation": "SUM",
        "eventType": "*",
        "valueProperty": f"$.{meter.slug}",
        "groupBy": {"app_id": "$.app_id"},
        "createdAt": _CREATED,
        "updatedAt": _CREATED,
    }


@dataclass(frozen=True, slots=True)
class AppFilter:
    """Which apps a query counts: ``include`` (None: every app) minus ``exclude``."""

    include: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()

    def admits(self, app_id: str) -> bool:
        """Whether the app's usage is counted."""
        return (self.include is None or app_id in self.include) and app_id not in self.exclude


@dataclass(frozen=True, slots=True)
class MeterQuery:
    """A validated meter query; ``start_ms``/``end_ms`` None: from or to the data's edge."""

    meter: Meter
    start_ms: int | None
    end_ms: int | None
    window: Window
    window_size: str | None
    tz: ZoneInfo
    subjects: tuple[str, ...]
    group_by: tuple[str, ...]
    apps: AppFilter


def _strings(value: object, name: str) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(item, str) for item in values):
        raise QueryError(f"{name}: expected strings")
    if len(values) > _MAX_VALUES:
        raise QueryError(f"{name}: at most {_MAX_VALUES} values")
    return cast(list[str], values)


def _filter_literal(text: str) -> dict[str, list[str]]:
    """``filterGroupBy`` sent as one value: JSON, or the Python literal SDK 1.0.0b236 sends."""
    if len(text) > _MAX_FILTER_TEXT:
        raise QueryError(f"filterGroupBy: longer than {_MAX_FILTER_TEXT} characters")
    try:
        value = json.loads(text)
    except RecursionError:
        raise QueryError("filterGroupBy: nested too deeply") from None
    except ValueError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise QueryError(
                f"filterGroupBy: {excerpt(text)} is not an object; send "
                "filterGroupBy[app_id]=<app> or filterGroupBy={'app_id': '<app>'}"
            ) from None
    if not isinstance(value, dict):
        raise QueryError("filterGroupBy: expected an object of group-by key to value")
    return {
        str(key): _strings(item, f"filterGroupBy[{excerpt(str(key))}]")
        for key, item in value.items()
    }


def parse_query_string(meter: Meter, items: Iterable[tuple[str, str]]) -> MeterQuery:
    """A GET query string (repeated keys kept) as a :class:`MeterQuery`."""
    single: dict[str, str] = {}
    lists: dict[str, list[str]] = {"subject": [], "groupBy": [], "filterCustomerId": []}
    filters: dict[str, list[str]] | None = None
    for key, value in items:
        if key in lists:
            lists[key].append(value)
        elif key.startswith("filterGroupBy[") and key.endswith("]"):
            filters = filters or {}
            filters.setdefault(key[len("filterGroupBy[") : -1], []).append(value)
        elif key == "filterGroupBy":
            filters = {**(filters or {}), **_filter_literal(value)}
        else:
            single[key] = value
    advanced = None
    if "advancedMeterGroupByFilters" in single:
        text = single["advancedMeterGroupByFilters"]
        if len(text) > _MAX_FILTER_TEXT:
            raise QueryError(f"advancedMeterGroupByFilters: over {_MAX_FILTER_TEXT} characters")
        try:
            advanced = json.loads(text)
        except (ValueError, RecursionError):
            raise QueryError("advancedMeterGroupByFilters: not valid JSON") from None
    if filters is not None:
        filters = {
            key: _strings(values, f"filterGroupBy[{excerpt(key)}]")
            for key, values in filters.items()
        }
    return _query(
        meter,
        single.get("from"),
        single.get("to"),
        single.get("windowSize"),
        single.get("windowTimeZone"),
        _strings(lists["subject"], "subject"),
        _strings(lists["groupBy"], "groupBy"),
        filters,
        advanced,
        _strings(lists["filterCustomerId"], "filterCustomerId"),
    )


def parse_body(meter: Meter, body: object) -> MeterQuery:
    """A POST body (OpenMeter's ``MeterQueryRequest``) as a :class:`MeterQuery`."""
    if not isinstance(body, dict):
        raise QueryError("the body must be a JSON object (MeterQueryRequest)")

    def text(name: str) -> str | None:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise QueryError(f"{name}: expected a string")
        return value

    filters = body.get("filterGroupBy")
    if filters is not None:
        if not isinstance(filters, dict):
            raise QueryError("filterGroupBy: expected an object of key to values")
        filters = {
            str(k): _strings(v, f"filterGroupBy[{excerpt(str(k))}]") for k, v in filters.items()
        }
    return _query(
        meter,
        text("from"),
        text("to"),
        text("windowSize"),
        text("windowTimeZone"),
        _strings(body.get("subject") or [], "subject"),
        _strings(body.get("groupBy") or [], "groupBy"),
        filters,
        body.get("advancedMeterGroupByFilters"),
        _strings(body.get("filterCustomerId") or [], "filterCustomerId"),
    )


def _bound(name: str, text: str | None, tz: ZoneInfo) -> int | None:
    return aligned_bound(name, text, tz) if text else None


def _window(size: str | None) -> Window:
    if size is None:
        return "none"
    if size == "MINUTE":
        raise QueryError(
            "windowSize=MINUTE cannot be answered: creditflow aggregates usage into 15-minute "
            "buckets; use HOUR, DAY or MONTH, or no windowSize for one total per group"
        )
    if size not in WINDOW_SIZES:
        raise QueryError(f"windowSize must be HOUR, DAY or MONTH (or absent); got {excerpt(size)}")
    return WINDOW_SIZES[size]


def _app_filter(filters: Mapping[str, list[str]] | None, advanced: object | None) -> AppFilter:
    if filters and advanced:
        raise QueryError("filterGroupBy and advancedMeterGroupByFilters cannot be used together")
    if filters:
        unknown = sorted(set(filters) - {"app_id"})
        if unknown:
            raise QueryError(
                f"filterGroupBy: unknown group-by key {excerpt(unknown[0])}; "
                "the meters filter by app_id"
            )
        return AppFilter(include=frozenset(filters["app_id"]))
    if not advanced:
        return AppFilter()
    if not isinstance(advanced, dict) or set(advanced) - {"app_id"}:
        raise QueryError("advancedMeterGroupByFilters: only app_id can be filtered")
    spec = advanced["app_id"]
    if not isinstance(spec, dict) or not spec or set(spec) - {"$eq", "$ne", "$in", "$nin"}:
        raise QueryError(
            "advancedMeterGroupByFilters.app_id: supported operators are $eq, $ne, $in, $nin"
        )
    include: set[str] | None = None
    for operator in ("$eq", "$in"):
        if operator in spec:
            values = set(_strings(spec[operator], f"app_id.{operator}"))
            include = values if include is None else include & values
    exclude: set[str] = set()
    for operator in ("$ne", "$nin"):
        if operator in spec:
            exclude |= set(_strings(spec[operator], f"app_id.{operator}"))
    return AppFilter(None if include is None else frozenset(include), frozenset(exclude))


def _query(
    meter: Meter,
    start: str | None,
    end: str | None,
    window_size: str | None,
    tz_name: str | None,
    subjects: list[str],
    group_by: list[str],
    filters: Mapping[str, list[str]] | None,
    advanced: object | None,
    customers: list[str],
) -> MeterQuery:
    if customers:
        raise QueryError(
            "filterCustomerId is not supported: customers are accounts here, filter with subject"
        )
    try:
        tz = parse_tz(tz_name or "UTC")
    except ValueError as error:
        raise QueryError(f"windowTimeZone: {error}") from None
    window = _window(window_size)
    start_ms, end_ms = _bound("from", start, tz), _bound("to", end, tz)
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        raise QueryError("from must be before to (the range is half-open [from, to))")
    for subject in subjects:
        if not is_id(subject):
            raise QueryError(f"subject: {excerpt(subject)} is not a valid account id")
    unknown = [key for key in group_by if key not in GROUP_KEYS]
    if unknown:
        raise QueryError(
            f"groupBy: unknown key {excerpt(unknown[0])}; the meters group by subject and app_id"
        )
    keys = list(dict.fromkeys(group_by))
    if subjects and "subject" not in keys:
        keys.append("subject")  # as OpenMeter: naming subjects groups by subject
    return MeterQuery(
        meter,
        start_ms,
        end_ms,
        window,
        window_size if window != "none" else None,
        tz,
        tuple(dict.fromkeys(subjects)),
        tuple(keys),
        _app_filter(filters, advanced),
    )
