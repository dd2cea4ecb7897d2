"""Meter query parameters: both filterGroupBy encodings, the POST body, and the 400s."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

import pytest

from api.openmeter.meters import (
    METERS,
    AppFilter,
    QueryError,
    find_meter,
    meter_json,
    parse_body,
    parse_query_string,
)
from core.buckets import to_epoch_ms

CREDITS = METERS["credits"]

# Query strings exactly as the SDKs send them (captured from 1.0.0b236, 1.0.0b188, @openmeter/sdk).
B236 = (
    "/api/v1/meters/credits/query?from=2025-01-01T00%3A00%3A00.000Z&to=2025-01-02T00%3A00%3A00.000Z"
    "&windowSize=HOUR&windowTimeZone=Asia%2FSeoul&subject=a&subject=b"
    "&filterGroupBy=%7B%27app_id%27%3A%20%27x%27%7D&groupBy=app_id"
)
B188 = (
    "/api/v1/meters/credits/query?from=2025-01-01T00%3A00%3A00.000Z&to=2025-01-02T00%3A00%3A00.000Z"
    "&windowSize=HOUR&windowTimeZone=UTC&subject=a&subject=b&filterGroupBy%5Bapp_id%5D=x"
    "&groupBy=app_id&groupBy=subject"
)
JS = (
    "/api/v1/meters/credits/query?from=2025-01-01T00%3A00%3A00.000Z&windowSize=DAY"
    "&windowTimeZone=Asia%2FSeoul&subject=a&filterGroupBy[app_id]=x&groupBy=app_id"
)


def parsed(url: str):
    return parse_query_string(CREDITS, parse_qsl(urlsplit(url).query, keep_blank_values=True))


def test_what_each_sdk_sends_means_the_same() -> None:
    for url in (B236, B188):
        query = parsed(url)
        assert query.start_ms == to_epoch_ms_text("2025-01-01T00:00:00Z")
        assert query.end_ms == to_epoch_ms_text("2025-01-02T00:00:00Z")
        assert (query.window, query.window_size) == ("hour", "HOUR")
        assert query.subjects == ("a", "b")
        assert set(query.group_by) == {"app_id", "subject"}
        assert query.apps == AppFilter(include=frozenset({"x"}))
    js = parsed(JS)
    assert (js.window, js.tz.key, js.end_ms, js.subjects) == ("day", "Asia/Seoul", None, ("a",))
    assert js.apps.admits("x") and not js.apps.admits("y")


def to_epoch_ms_text(text: str) -> int:
    return to_epoch_ms(datetime.fromisoformat(text))


def test_post_body() -> None:
    query = parse_body(
        CREDITS,
        {
            "from": "2025-01-01T00:00:00Z",
            "windowSize": "MONTH",
            "windowTimeZone": "Europe/Budapest",
            "filterGroupBy": {"app_id": ["x", "y"]},
            "groupBy": ["subject"],
        },
    )
    assert (query.window, query.tz.key, query.group_by) == (
        "month",
        "Europe/Budapest",
        ("subject",),
    )
    assert query.apps.include == frozenset({"x", "y"})


def test_advanced_filters() -> None:
    query = parsed('/q?advancedMeterGroupByFilters={"app_id":{"$nin":["a"],"$in":["a","b"]}}')
    assert [app for app in "abc" if query.apps.admits(app)] == ["b"]


def test_defaults() -> None:
    query = parsed("/q")
    assert (query.start_ms, query.end_ms, query.window, query.tz.key) == (None, None, "none", "UTC")
    assert query.group_by == () and query.apps == AppFilter()


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("/q?windowSize=MINUTE", "use HOUR, DAY or MONTH"),
        ("/q?windowSize=WEEK", "windowSize must be HOUR, DAY or MONTH"),
        ("/q?windowTimeZone=Mars/Base", "unknown time zone"),
        ("/q?from=2025-01-01T00:07:00Z", "15-minute boundary"),
        ("/q?to=2025-01-01T00:00:30Z", "15-minute boundary"),
        ("/q?from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z", "before"),
        ("/q?from=yesterday", "RFC 3339"),
        ("/q?groupBy=model", "unknown key 'model'"),
        ("/q?groupBy=customer_id", "unknown key"),
        ("/q?filterGroupBy[model]=x", "unknown group-by key 'model'"),
        ("/q?filterGroupBy=__import__('os')", "not an object"),
        ("/q?filterGroupBy=[1]", "expected an object"),
        (
            '/q?filterGroupBy[app_id]=x&advancedMeterGroupByFilters={"app_id":{"$eq":"x"}}',
            "together",
        ),
        ('/q?advancedMeterGroupByFilters={"app_id":{"$like":"x"}}', "$eq, $ne, $in, $nin"),
        ('/q?advancedMeterGroupByFilters={"model":{"$eq":"x"}}', "only app_id"),
        ("/q?advancedMeterGroupByFilters=nope", "not valid JSON"),
        ("/q?filterCustomerId=c1", "filter with subject"),
        ("/q?subject=bad%20id", "not a valid account id"),
    ],
)
def test_what_cannot_be_answered_exactly_is_a_clear_400(url: str, fragment: str) -> None:
    with pytest.raises(QueryError) as info:
        parsed(url)
    assert fragment in str(info.value)


def test_long_input_is_bounded_and_not_echoed() -> None:
    with pytest.raises(QueryError) as info:
        parsed("/q?filterGroupBy=" + "{" * 10_000)
    assert len(str(info.value)) < 200
    with pytest.raises(QueryError) as info:
        parsed("/q?windowSize=" + "X" * 10_000)
    assert len(str(info.value)) < 200
    with pytest.raises(QueryError) as info:
        parsed("/q?subject=" + "a" * 10_000)
    assert len(str(info.value)) < 200


def test_meters() -> None:
    assert set(METERS) == {"credits", "calls"}
    for meter in METERS.values():
        assert find_meter(meter.slug) is meter is find_meter(meter.id)
        body = meter_json(meter)
        assert body["aggregation"] == "SUM" and body["groupBy"] == {"app_id": "$.app_id"}
        assert len(body["id"]) == 26
    assert find_meter("tokens") is None


@pytest.mark.parametrize(
    "repeated",
    ["subject=s{n}", "groupBy=g{n}", "filterGroupBy[app_id]=a{n}", "filterCustomerId=c{n}"],
)
def test_a_query_string_repeats_a_key_at_most_as_often_as_a_body_may(repeated: str) -> None:
    many = "&".join(repeated.format(n=n) for n in range(101))
    with pytest.raises(QueryError, match="at most 100 values"):
        parsed(f"/api/v1/meters/credits/query?{many}")
    few = "&".join(repeated.format(n=n) for n in range(3))
    try:
        parsed(f"/api/v1/meters/credits/query?{few}")
    except QueryError as error:  # some of these keys are refused for their values, not count
        assert "at most" not in str(error)
