"""CloudEvents to call events: the mapping, exact numbers, dedup ids and clear refusals."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.openmeter.cloudevents import (
    IngestError,
    ItemError,
    app_from_source,
    event_id_of,
    map_body,
)
from core.events import Event
from tests.core.support import FAST, T0


def cloud(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "e-1",
        "source": "my-service",
        "specversion": "1.0",
        "type": "llm.call",
        "subject": "acme",
        "time": "2026-11-27T04:12:33.120+09:00",
        "data": {"credits": "12.5", "app_id": "support-bot", "model": "alli-large"},
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def one(body: object, content_type: str = "application/json") -> Event | ItemError:
    [item] = map_body(json.dumps(body).encode(), content_type, T0)
    return item


def test_the_mapping() -> None:
    event = one(cloud())
    assert isinstance(event, Event)
    assert (event.account_id, event.app_id, event.calls, event.micro) == (
        "acme",
        "support-bot",
        1,
        12_500_000,
    )
    mapped = json.loads(event.raw)
    assert mapped == {
        "event_id": "om:10:my-service:e-1",
        "account_id": "acme",
        "app_id": "support-bot",
        "occurred_at": "2026-11-27T04:12:33.120+09:00",
        "credits": "12.5",
        "attributes": {"model": "alli-large"},
    }


def test_json_numbers_are_copied_as_text_never_through_a_float() -> None:
    body = (
        b'{"id":"1","source":"s","specversion":"1.0","type":"t","subject":"acme",'
        b'"time":"2026-11-27T00:00:00Z","data":{"credits":0.1000000,"calls":3}}'
    )
    [event] = map_body(body, "application/cloudevents+json", T0)
    assert isinstance(event, Event)
    assert b'"credits":0.1000000' in event.raw
    assert (event.micro, event.calls) == (100_000, 3)


def test_defaults_app_from_source_no_credits_no_time() -> None:
    event = one(cloud(source="@openmeter/sdk", data={}, time=None))
    assert isinstance(event, Event)
    assert event.app_id == "openmeter-sdk"
    assert event.micro == 0 and event.calls == 1
    assert event.occurred_ms == T0  # receipt time


@pytest.mark.parametrize(
    ("source", "app"),
    [
        ("@openmeter/sdk", "openmeter-sdk"),
        ("https://api.example.com/v1", "https-api.example.com-v1"),
        ("svc.a_b-c", "svc.a_b-c"),
        ("///", "default"),
        ("x" * 100, "x" * 64),
    ],
)
def test_app_from_source(source: str, app: str) -> None:
    assert app_from_source(source) == app


@given(st.text(min_size=1, max_size=300))
@FAST
def test_app_from_source_is_always_a_valid_app_id(source: str) -> None:
    event = one(cloud(source=source, data={"credits": "1"}))
    assert isinstance(event, Event), event


@given(st.text(max_size=200), st.text(max_size=200), st.text(max_size=200), st.text(max_size=200))
@FAST
def test_event_ids_fit_and_never_collide(s1: str, i1: str, s2: str, i2: str) -> None:
    a, b = event_id_of(s1, i1), event_id_of(s2, i2)
    assert 1 <= len(a) <= 128 and 1 <= len(b) <= 128
    assert (a == b) == ((s1, i1) == (s2, i2))


def test_event_id_is_deterministic_and_long_pairs_are_hashed() -> None:
    assert event_id_of("s", "1") == event_id_of("s", "1") == "om:1:s:1"
    # The length prefix keeps "a:b" + "c" apart from "a" + "b:c".
    assert event_id_of("a:b", "c") != event_id_of("a", "b:c")
    long = event_id_of("s" * 100, "i" * 100)
    assert long.startswith("om#") and len(long) == 67


@pytest.mark.parametrize(
    ("fields", "reason", "fragment"),
    [
        ({"subject": "bad subject"}, "invalid_event", "subject:"),
        ({"subject": None}, "invalid_cloudevent", "subject"),
        ({"id": ""}, "invalid_cloudevent", "id: must not be empty"),
        ({"data": {"credits": "-1"}}, "invalid_event", "credits"),
        ({"data": {"credits": "1.0000001"}}, "invalid_event", "6 fractional digits"),
        ({"data": {"app_id": 7}}, "invalid_cloudevent", "data.app_id must be a string"),
        ({"data": {"app_id": "bad app"}}, "invalid_event", "data.app_id"),
        ({"data": {"nested": {"a": 1}}}, "invalid_event", "data:"),
        ({"time": "2026-11-27T00:00:00"}, "invalid_event", "time:"),
        ({"data": [1]}, "invalid_cloudevent", "data"),
    ],
)
def test_refusals_name_the_cloudevent_field(
    fields: dict[str, object], reason: str, fragment: str
) -> None:
    item = one(cloud(**fields))
    assert isinstance(item, ItemError), item
    assert item.reason == reason
    assert fragment in item.detail


def test_each_event_of_a_batch_is_judged_on_its_own() -> None:
    items = map_body(
        json.dumps([cloud(), cloud(subject="no way"), cloud(id="e-2")]).encode(),
        "application/cloudevents-batch+json",
        T0,
    )
    assert [type(i).__name__ for i in items] == ["Event", "ItemError", "Event"]
    assert isinstance(items[1], ItemError) and items[1].index == 1


@pytest.mark.parametrize(
    ("body", "content_type", "fragment", "unsupported"),
    [
        (b"[]", "application/json", "empty", False),
        (b"[{", "application/json", "not valid JSON", False),
        (b"42", "application/json", "CloudEvents JSON object", False),
        (b"[{}]", "application/cloudevents+json", "one event object", False),
        (b"{}", "application/cloudevents-batch+json", "an array", False),
        (b"{}", "text/plain", "not supported", True),
    ],
)
def test_unreadable_requests(
    body: bytes, content_type: str, fragment: str, unsupported: bool
) -> None:
    with pytest.raises(IngestError) as info:
        map_body(body, content_type, T0)
    assert fragment in str(info.value)
    assert info.value.unsupported is unsupported


def test_an_unparseable_event_is_refused_as_such() -> None:
    [item] = map_body(b'{"id": ', "application/cloudevents+json", T0)
    assert isinstance(item, ItemError) and item.reason == "invalid_json"


def test_batch_bound_and_content_type_parameters() -> None:
    with pytest.raises(IngestError, match="at most 1000"):
        map_body(json.dumps([cloud()] * 1001).encode(), "application/json", T0)
    [event] = map_body(json.dumps(cloud()).encode(), "Application/JSON; charset=utf-8", T0)
    assert isinstance(event, Event)


def test_error_messages_do_not_echo_unbounded_input() -> None:
    with pytest.raises(IngestError) as info:
        map_body(b"{}", "x/" + "y" * 10_000, T0)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000,
        b'[{"data": ' + b"[" * 5000 + b"]" * 5000 + b"}]",
        json.dumps(cloud(data={"x": "deep"}))
        .encode()
        .replace(b'"deep"', b"[" * 5000 + b"]" * 5000),
    ],
)
def test_deeply_nested_bodies_are_refused_not_a_crash(body: bytes) -> None:
    try:
        items = map_body(body, "application/json", T0)
    except IngestError as error:
        assert "nested too deeply" in str(error)
        return
    assert [item.reason for item in items if isinstance(item, ItemError)] == ["invalid_json"]
