"""Meter query answers from /v1 usage answers: every row equals a brute-force sum of buckets."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from api.openmeter.meters import METERS, AppFilter, MeterQuery
from api.openmeter.rows import answer_csv, answer_json, resolve_range, rows_of, usage_params
from core.buckets import BUCKET_MS
from core.localtime import boundaries, iso_local, parse_tz
from core.money import format_micro
from core.usage import parse_usage_query
from tests.core.support import FAST, HOUR, T0
from tests.core.test_usage import answer_of, app_days

ZONES = ("UTC", "Asia/Seoul", "Asia/Kolkata", "America/New_York", "Asia/Kathmandu")
APPS = ("bot", "search", "sum")
ACCOUNTS = ("acme", "globex")

Buckets = dict[
    str, dict[str, list[tuple[int, int, int]]]
]  # account -> app -> (start, calls, micro)


def answers_of(buckets: Buckets, params: dict[str, str]) -> dict[str, dict[str, Any]]:
    """What /v1/accounts/{a}/usage answers for each account (creditflow's own computation)."""
    out = {}
    for account, apps in buckets.items():
        query = parse_usage_query(
            account, params["from"], params["to"], params["tz"], params["window"], "app", "UTC"
        )
        series = {app: app_days(rows) for app, rows in apps.items()}
        out[account] = answer_of(query, series)
    return out


def meter_query(**fields: Any) -> MeterQuery:
    base: dict[str, Any] = {
        "meter": METERS["credits"],
        "start_ms": None,
        "end_ms": None,
        "window": "none",
        "window_size": None,
        "tz": parse_tz("UTC"),
        "subjects": (),
        "group_by": (),
        "apps": AppFilter(),
    }
    base.update(fields)
    return MeterQuery(**base)


bucket_lists = st.dictionaries(
    st.sampled_from(ACCOUNTS),
    st.dictionaries(
        st.sampled_from(APPS),
        st.lists(
            st.tuples(
                st.integers(0, 4 * 24 * 4 - 1),
                st.integers(0, 5),
                st.integers(0, 10**9),
            ),
            max_size=12,
            unique_by=lambda t: t[0],
        ),
        min_size=1,
    ),
    min_size=1,
)


@given(
    bucket_lists,
    st.sampled_from(ZONES),
    st.sampled_from(("none", "hour", "day", "month")),
    st.sets(st.sampled_from(("subject", "app_id"))),
    st.sets(st.sampled_from(APPS)) | st.none(),
    st.sampled_from(("credits", "calls")),
    st.integers(0, 200),
    st.integers(1, 200),
)
@FAST
def test_rows_are_exact_sums(
    raw: dict[str, dict[str, list[tuple[int, int, int]]]],
    zone: str,
    window: str,
    group_by: set[str],
    include: set[str] | None,
    slug: str,
    start_index: int,
    length: int,
) -> None:
    buckets: Buckets = {
        account: {
            app: [(T0 + i * BUCKET_MS, calls, micro) for i, calls, micro in rows]
            for app, rows in apps.items()
        }
        for account, apps in raw.items()
    }
    start, end = T0 + start_index * BUCKET_MS, T0 + (start_index + length) * BUCKET_MS
    query = meter_query(
        meter=METERS[slug],
        start_ms=start,
        end_ms=end,
        window=window,
        window_size=None if window == "none" else window.upper(),
        tz=parse_tz(zone),
        group_by=tuple(sorted(group_by)),
        apps=AppFilter(None if include is None else frozenset(include)),
    )
    span = resolve_range(query, None)
    assert span == (start, end)
    rows = rows_of(query, *span, answers_of(buckets, usage_params(query, *span)))
    edges = boundaries(start, end, query.tz, query.window)
    expected: dict[tuple[str, str | None, str | None], list[int]] = {}
    for account, apps in buckets.items():
        for app, rows_of_app in apps.items():
            if include is not None and app not in include:
                continue
            for bucket, calls, micro in rows_of_app:
                if not start <= bucket < end:
                    continue
                lo = max(e for e in edges[:-1] if e <= bucket)
                key = (
                    iso_local(lo, query.tz),
                    account if "subject" in group_by else None,
                    app if "app_id" in group_by else None,
                )
                sums = expected.setdefault(key, [0, 0])
                sums[0] += calls
                sums[1] += micro
    got = {
        (row.window_start.replace("Z", "+00:00"), row.subject, row.app_id): [row.calls, row.micro]
        for row in rows
    }
    assert got == expected
    assert len(got) == len(rows)  # one row per window and group
    body = json.loads(answer_json(query, rows), parse_float=Decimal)
    for row, item in zip(rows, body["data"], strict=True):
        value = format_micro(row.micro) if slug == "credits" else str(row.calls)
        assert Decimal(item["value"]) == Decimal(value)


def test_missing_bounds_are_the_datas_edges_widened_to_whole_windows() -> None:
    seoul = parse_tz("Asia/Seoul")
    # Data from 2026-11-27 03:00 to 05:15 UTC (12:00 to 14:15 in Seoul).
    extent = (T0 + 3 * HOUR, T0 + 5 * HOUR + BUCKET_MS)
    assert resolve_range(meter_query(), extent) == extent
    day = meter_query(window="day", window_size="DAY", tz=seoul)
    assert resolve_range(day, extent) == (T0 - 9 * HOUR, T0 + 15 * HOUR)
    hour = meter_query(window="hour", window_size="HOUR", tz=parse_tz("Asia/Kathmandu"))
    lo, hi = resolve_range(hour, extent)  # type: ignore[misc]
    assert (lo - T0) % BUCKET_MS == 0 and iso_local(lo, hour.tz).endswith(":00:00+05:45")
    assert lo <= extent[0] < lo + HOUR and hi - HOUR < extent[1] <= hi
    month = meter_query(window="month", window_size="MONTH", tz=seoul)
    assert iso_local(resolve_range(month, extent)[0], seoul) == "2026-11-01T00:00:00+09:00"  # type: ignore[index]
    assert resolve_range(meter_query(), None) is None
    after = meter_query(start_ms=T0 + 6 * HOUR)
    assert resolve_range(after, extent) is None


def test_json_and_csv() -> None:
    buckets: Buckets = {
        "acme": {"bot": [(T0, 2, 100_000), (T0 + BUCKET_MS, 1, 200_000)], "sum": [(T0, 1, 5)]}
    }
    query = meter_query(start_ms=T0, end_ms=T0 + HOUR, group_by=("subject", "app_id"))
    rows = rows_of(query, T0, T0 + HOUR, answers_of(buckets, usage_params(query, T0, T0 + HOUR)))
    text = answer_json(query, rows)
    # 0.1 + 0.2 is exactly 0.3 here: the number is written from the decimal text.
    assert b'"value":0.3,' in text and b'"value":0.000005,' in text
    body = orjson.loads(text)
    assert body["from"] == "2026-11-27T00:00:00Z" and "windowSize" not in body
    assert body["data"][0] == {
        "value": 0.3,
        "windowStart": "2026-11-27T00:00:00Z",
        "windowEnd": "2026-11-27T01:00:00Z",
        "subject": "acme",
        "groupBy": {"app_id": "bot"},
    }
    table = list(csv.reader(io.StringIO(answer_csv(query, rows))))
    assert table == [
        ["window_start", "window_end", "subject", "app_id", "value"],
        ["2026-11-27T00:00:00Z", "2026-11-27T01:00:00Z", "acme", "bot", "0.300000"],
        ["2026-11-27T00:00:00Z", "2026-11-27T01:00:00Z", "acme", "sum", "0.000005"],
    ]
    calls = replace(query, meter=METERS["calls"], group_by=())
    rows = rows_of(calls, T0, T0 + HOUR, answers_of(buckets, usage_params(calls, T0, T0 + HOUR)))
    assert list(csv.reader(io.StringIO(answer_csv(calls, rows)))) == [
        ["window_start", "window_end", "value"],
        ["2026-11-27T00:00:00Z", "2026-11-27T01:00:00Z", "4.000000"],
    ]
    assert orjson.loads(answer_json(calls, rows))["data"][0]["subject"] is None
