"""Call-event validation: record bytes in, events or rejections (with reasons and indexes) out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.buckets import to_epoch_ms
from core.events import (
    MAX_BATCH_EVENTS,
    Event,
    Reason,
    Rejection,
    decode_body,
    decode_event,
)
from core.money import MICRO
from tests.core.support import CORPUS, FAST, MISSING, T0, dumps, event

LIMIT = 1024 * 1024


def _accepted(raw: bytes) -> Event:
    outcome = decode_event(raw)
    assert isinstance(outcome, Event), outcome
    return outcome


def _rejected(raw: bytes, index: int | None = None) -> Rejection:
    outcome = decode_event(raw, index)
    assert isinstance(outcome, Rejection), outcome
    return outcome


# ------------------------------------------------------------------ one event


def test_contract_example_is_decoded_exactly() -> None:
    raw = dumps(event())
    got = _accepted(raw)
    assert got.event_id == "0b6f3c1e-9d4e-4a51-9f0a-2a7c1d1e5b11"
    assert got.account_id == "acme"
    assert got.app_id == "support-bot"
    # 2026-11-27T04:12:33.120+09:00 is 2026-11-26T19:12:33.120Z.
    assert got.occurred_ms == T0 - 5 * 3_600_000 + 12 * 60_000 + 33_120
    assert got.micro == 12_500_000
    assert got.calls == 1
    assert got.raw == raw  # the original bytes travel with the event, for the DLQ
    assert got.index is None


def test_index_is_carried() -> None:
    assert _accepted_at(dumps(event()), 7).index == 7
    assert _rejected(dumps(event(calls=-1)), 7).index == 7


def _accepted_at(raw: bytes, index: int) -> Event:
    outcome = decode_event(raw, index)
    assert isinstance(outcome, Event)
    return outcome


def test_defaults_and_optional_fields() -> None:
    assert _accepted(dumps(event(calls=MISSING))).calls == 1
    assert _accepted(dumps(event(calls=0))).calls == 0
    assert _accepted(dumps(event(attributes=MISSING))).micro == 12_500_000
    assert _accepted(dumps(event(attributes=None))).micro == 12_500_000


@pytest.mark.parametrize(
    ("credits_json", "micro"),
    [
        ('"12.5"', 12_500_000),
        ("12.5", 12_500_000),
        ("1e3", 1_000 * MICRO),
        ('"0.000001"', 1),
        ('"12.500000000"', 12_500_000),
        ("0", 0),
        ('"1000000000"', 10**9 * MICRO),
        ('"1\\u0032.5"', 12_500_000),  # a JSON escape inside the string is still "12.5"
    ],
)
def test_credits_forms(credits_json: str, micro: int) -> None:
    raw = dumps(event(credits="@")).replace(b'"@"', credits_json.encode())
    assert _accepted(raw).micro == micro


@pytest.mark.parametrize(
    ("occurred_at", "utc"),
    [
        ("2026-11-27T04:12:33Z", datetime(2026, 11, 27, 4, 12, 33, tzinfo=UTC)),
        ("2026-11-27T04:12:33.5+05:30", datetime(2026, 11, 26, 22, 42, 33, 500_000, tzinfo=UTC)),
        ("2026-11-27T04:12:33-03:00", datetime(2026, 11, 27, 7, 12, 33, tzinfo=UTC)),
        ("2026-11-27T00:00:00.999999+00:00", datetime(2026, 11, 27, 0, 0, 0, 999_000, tzinfo=UTC)),
    ],
)
def test_occurred_at_is_event_time_in_utc(occurred_at: str, utc: datetime) -> None:
    assert _accepted(dumps(event(occurred_at=occurred_at))).occurred_ms == to_epoch_ms(utc)


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"event_id": MISSING}, "event_id"),
        ({"event_id": ""}, "event_id"),
        ({"event_id": "x" * 129}, "event_id"),
        ({"event_id": 5}, "event_id"),
        ({"account_id": MISSING}, "account_id"),
        ({"account_id": ""}, "account_id"),
        ({"account_id": "a" * 65}, "account_id"),
        ({"account_id": "-acme"}, "account_id"),
        ({"account_id": "ac me"}, "account_id"),
        ({"account_id": "acme\n"}, "account_id"),  # "$" in Python's re matches before a final \n
        ({"account_id": "acmé"}, "account_id"),
        ({"app_id": "bot:1"}, "app_id"),
        ({"app_id": "_bot"}, "app_id"),
        ({"app_id": "bot\n"}, "app_id"),
        ({"occurred_at": "2026-11-27T04:12:33"}, "occurred_at"),  # naive
        ({"occurred_at": "2026-11-27"}, "occurred_at"),
        ({"occurred_at": "not a time"}, "occurred_at"),
        ({"occurred_at": 1_795_720_353}, "occurred_at"),
        ({"occurred_at": MISSING}, "occurred_at"),
        ({"credits": MISSING}, "credits"),
        ({"credits": "-1"}, "credits"),
        ({"credits": "1e3"}, "credits"),
        ({"credits": "NaN"}, "credits"),
        ({"credits": "Infinity"}, "credits"),
        ({"credits": "0.0000001"}, "credits"),
        ({"credits": "1000000000.000001"}, "credits"),
        ({"credits": "9" * 5000}, "credits"),
        ({"credits": True}, "credits"),
        ({"credits": None}, "credits"),
        ({"credits": []}, "credits"),
        ({"calls": -1}, "calls"),
        ({"calls": 1.5}, "calls"),
        ({"calls": "1"}, "calls"),
        ({"calls": True}, "calls"),
        ({"calls": None}, "calls"),
        ({"calls": 1_000_000_001}, "calls"),
        ({"surprise": 1}, "surprise"),
        ({"attributes": {"model": {"name": "x"}}}, "attributes"),
        ({"attributes": {"tags": ["a", "b"]}}, "attributes"),
        ({"attributes": ["a"]}, "attributes"),
        ({"attributes": "model=x"}, "attributes"),
        ({"attributes": {"k": "v" * 2041}}, "attributes"),
    ],
)
def test_each_field_violation_is_an_invalid_event(fields: dict[str, Any], where: str) -> None:
    raw = dumps(event(**fields))
    rejection = _rejected(raw, 3)
    assert rejection.reason is Reason.INVALID_EVENT
    assert where in rejection.detail
    assert rejection.index == 3
    assert rejection.raw == raw


@pytest.mark.parametrize(
    "literal",
    [
        "-0.5",
        "12.3456789",
        "0.1000000000000000055511151231257827",
        "1.0000000000000000000000000001",
        "1e10",
        "1" + "0" * 40,
    ],
)
def test_invalid_credits_numbers(literal: str) -> None:
    raw = dumps(event(credits="@")).replace(b'"@"', literal.encode())
    rejection = _rejected(raw)
    assert rejection.reason is Reason.INVALID_EVENT
    assert rejection.detail.startswith("credits:")


def test_field_detail_names_the_problem() -> None:
    assert _rejected(dumps(event(calls=-1))).detail.startswith("calls: Expected `int` >= 0")
    assert "fractional digits" in _rejected(dumps(event(credits="0.0000001"))).detail
    assert "surprise" in _rejected(dumps(event(surprise=1))).detail


def test_attributes_limit_is_2_kib_serialized() -> None:
    fits = dumps(event(attributes={"k": "v" * 2040}))  # {"k":"vvv…"} is exactly 2048 bytes
    assert len(dumps({"k": "v" * 2040})) == 2048
    assert _accepted(fits).micro == 12_500_000
    over = _rejected(dumps(event(attributes={"k": "v" * 2041})))
    assert "2048" in over.detail


def test_attributes_may_hold_every_flat_scalar() -> None:
    flat = {"s": "x", "i": -3, "f": 1.5, "b": False, "n": None}
    assert _accepted(dumps(event(attributes=flat))).calls == 1


def test_bad_json_event() -> None:
    rejection = _rejected(dumps(event())[:-1])
    assert rejection.reason is Reason.INVALID_JSON


def test_invalid_utf8_inside_an_event_is_a_rejection_not_a_crash() -> None:
    for field in ("event_id", "credits", "attributes"):
        value: Any = {"k": "@"} if field == "attributes" else "1@"
        raw = dumps(event(**{field: value})).replace(b"@", b"\xff")
        rejection = _rejected(raw, 2)
        assert rejection.reason is Reason.INVALID_ENCODING, field
        assert rejection.index == 2


# ------------------------------------------------------------------ record bodies


def _record_rejection(value: bytes, max_bytes: int = LIMIT) -> Rejection:
    outcome = decode_body(value, max_bytes)
    assert isinstance(outcome, Rejection), outcome
    assert outcome.index is None
    assert outcome.raw == value
    return outcome


def test_single_event_body() -> None:
    raw = dumps(event())
    outcome = decode_body(raw, LIMIT)
    assert isinstance(outcome, list)
    assert len(outcome) == 1
    assert isinstance(outcome[0], Event)
    assert outcome[0].index is None
    assert outcome[0].raw == raw


def test_single_invalid_event_body_is_one_event_rejection() -> None:
    outcome = decode_body(dumps(event(calls=-1)), LIMIT)
    assert isinstance(outcome, list)
    assert len(outcome) == 1
    assert isinstance(outcome[0], Rejection)
    assert outcome[0].reason is Reason.INVALID_EVENT


def test_whitespace_around_the_body_is_fine() -> None:
    body = b" \n\t" + dumps([event()]) + b"\n"
    outcome = decode_body(body, LIMIT)
    assert isinstance(outcome, list)
    assert isinstance(outcome[0], Event)
    outcome = decode_body(b"\r\n " + dumps(event()), LIMIT)
    assert isinstance(outcome, list)
    assert isinstance(outcome[0], Event)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"   ",
        b"not json",
        b'{"event_id": ',
        b'[{"event_id": "a"},',
        b"[1, 2",
        dumps(event()) + b" trailing",
        dumps(event()) + dumps(event()),
        b"{'single': 'quotes'}",
        b"\xef\xbb\xbf" + dumps(event()),  # a UTF-8 byte-order mark is not JSON
    ],
)
def test_unparseable_record_is_invalid_json(value: bytes) -> None:
    assert _record_rejection(value).reason is Reason.INVALID_JSON


@pytest.mark.parametrize(
    "value",
    [
        b"\xff\xfe\x00{",
        b'{"event_id": "\xc3\x28"}',  # invalid two-byte sequence
        dumps(event(event_id="e-@")).replace(b"@", b"\xff"),  # otherwise a valid event
        b"[\xff]",
    ],
)
def test_non_utf8_record_is_invalid_encoding(value: bytes) -> None:
    assert _record_rejection(value).reason is Reason.INVALID_ENCODING


@pytest.mark.parametrize("value", [b"42", b'"an event"', b"null", b"true", b"12.5"])
def test_json_that_is_neither_object_nor_array_is_invalid_shape(value: bytes) -> None:
    assert _record_rejection(value).reason is Reason.INVALID_SHAPE


@pytest.mark.parametrize("value", [b"[]", b" [ ] ", b"[\n]"])
def test_empty_batch(value: bytes) -> None:
    assert _record_rejection(value).reason is Reason.EMPTY_BATCH


def test_batch_of_1000_is_fine_and_1001_is_too_large() -> None:
    items = [event(event_id=f"e{i}") for i in range(MAX_BATCH_EVENTS)]
    outcome = decode_body(dumps(items), LIMIT)
    assert isinstance(outcome, list)
    assert len(outcome) == MAX_BATCH_EVENTS
    assert all(isinstance(item, Event) for item in outcome)
    assert [item.index for item in outcome] == list(range(MAX_BATCH_EVENTS))

    rejection = _record_rejection(dumps([*items, event(event_id="one-more")]))
    assert rejection.reason is Reason.BATCH_TOO_LARGE
    assert "1001" in rejection.detail


def test_oversize_record() -> None:
    raw = dumps(event())
    outcome = decode_body(raw, len(raw))  # exactly at the limit: fine
    assert isinstance(outcome, list)
    assert isinstance(outcome[0], Event)
    rejection = _record_rejection(raw, len(raw) - 1)
    assert rejection.reason is Reason.RECORD_TOO_LARGE
    assert str(len(raw)) in rejection.detail
    # The size check comes first: even unreadable bytes are reported as too large.
    assert _record_rejection(b"\xff" * 100, 99).reason is Reason.RECORD_TOO_LARGE


def test_batch_items_are_judged_individually_with_their_indexes() -> None:
    items: list[Any] = [
        event(event_id="ok-0"),
        event(event_id="bad-calls", calls=-1),
        42,
        event(event_id="ok-3", credits="0.25"),
        [event()],
        event(event_id="bad-credits", credits="0.0000001"),
        event(event_id="ok-6", account_id="other"),  # accepted here; routing is not decoding
        "string",
        None,
    ]
    body = dumps(items)
    outcome = decode_body(body, LIMIT)
    assert isinstance(outcome, list)
    assert [type(item).__name__ for item in outcome] == [
        "Event",
        "Rejection",
        "Rejection",
        "Event",
        "Rejection",
        "Rejection",
        "Event",
        "Rejection",
        "Rejection",
    ]
    assert [item.index for item in outcome] == list(range(len(items)))
    for item, original in zip(outcome, items, strict=True):
        assert item.raw == dumps(original)  # each item keeps exactly its own bytes
        assert item.raw in body
    assert [item.event_id for item in outcome if isinstance(item, Event)] == [
        "ok-0",
        "ok-3",
        "ok-6",
    ]
    reasons = [item.reason for item in outcome if isinstance(item, Rejection)]
    assert reasons == [Reason.INVALID_EVENT] * 6
    assert outcome[3].micro == 250_000


def test_batch_item_raw_bytes_keep_original_formatting() -> None:
    first = b'{ "event_id" : "x",\n "account_id":"acme","app_id":"a","occurred_at":"2026-11-27T00:00:00Z","credits":"1" }'
    body = b"[ " + first + b" ,\n" + dumps(event(calls=-1)) + b" ]"
    outcome = decode_body(body, LIMIT)
    assert isinstance(outcome, list)
    assert outcome[0].raw == first
    assert isinstance(outcome[1], Rejection)
    assert outcome[1].index == 1


def test_invalid_utf8_in_one_batch_item_rejects_only_that_item() -> None:
    bad = dumps(event(event_id="e-@")).replace(b"@", b"\xff")
    body = b"[" + dumps(event(event_id="a")) + b"," + bad + b"," + dumps(event(event_id="b")) + b"]"
    outcome = decode_body(body, LIMIT)
    assert isinstance(outcome, list)
    assert [type(item) for item in outcome] == [Event, Rejection, Event]
    assert isinstance(outcome[1], Rejection)
    assert outcome[1].reason is Reason.INVALID_ENCODING
    assert outcome[1].index == 1


@pytest.mark.parametrize(("label", "raw", "valid"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus(label: str, raw: bytes, valid: bool) -> None:
    outcome = decode_event(raw)
    assert isinstance(outcome, Event) is valid, (label, outcome)
    if raw.startswith(b"["):
        return  # as a record body that is a (valid) batch of one
    # Never a crash and never a silent drop: a body of one event gives exactly one outcome.
    body = decode_body(raw, LIMIT)
    if isinstance(body, list):
        assert len(body) == 1
        assert isinstance(body[0], Event) is valid
    else:
        assert not valid


def test_reason_values_are_stable() -> None:
    # They appear verbatim in the DLQ and the API: renaming one is a contract change.
    assert {reason.value for reason in Reason} == {
        "invalid_encoding",
        "invalid_json",
        "invalid_shape",
        "empty_batch",
        "batch_too_large",
        "record_too_large",
        "invalid_event",
        "too_late",
        "too_far_in_future",
        "forbidden_account",
        "duplicate_key",
    }


# ------------------------------------------------------------------ generated events

ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timedelta(minutes=m))
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@FAST
@given(
    event_id=st.text(min_size=1, max_size=128).filter(lambda s: "\x00" not in s),
    account=ids,
    app=ids,
    moment=moments,
    offset=offsets,
    micro=st.integers(min_value=0, max_value=10**15),
    calls=st.integers(min_value=0, max_value=10**9),
    as_number=st.booleans(),
)
def test_generated_valid_events_decode_to_their_values(
    event_id: str,
    account: str,
    app: str,
    moment: datetime,
    offset: timedelta,
    micro: int,
    calls: int,
    as_number: bool,
) -> None:
    whole, fraction = divmod(micro, MICRO)
    credits = f"{whole}.{fraction:06d}"
    stamp = moment.astimezone(UTC).replace(tzinfo=None) + offset
    occurred_at = stamp.isoformat() + (
        "Z"
        if not offset
        else f"{'-' if offset < timedelta(0) else '+'}{abs(offset) // timedelta(hours=1):02d}:"
        f"{abs(offset) % timedelta(hours=1) // timedelta(minutes=1):02d}"
    )
    # An offset of +h means local time runs ahead of UTC: the local wall shows moment + offset.
    doc = event(
        event_id=event_id,
        account_id=account,
        app_id=app,
        occurred_at=occurred_at,
        credits=credits,
        calls=calls,
    )
    raw = json.dumps(doc, ensure_ascii=bool(calls % 2)).encode()
    if as_number:
        raw = raw.replace(f'"{credits}"'.encode(), credits.encode())
    got = _accepted(raw)
    assert (got.event_id, got.account_id, got.app_id) == (event_id, account, app)
    assert got.micro == micro
    assert got.calls == calls
    assert got.occurred_ms == to_epoch_ms(moment)


_SINGLE = (
    '{"event_id":"e1","account_id":"acme","app_id":"bot","occurred_at":'
    '"2026-11-30T10:00:00.123+00:00","credits":%s%s}'
)


@pytest.mark.parametrize(
    "credits, rest",
    [
        ('"12.5"', ""),
        ('"12.5"', ',"calls":3'),
        ('"0"', ""),
        ('"1000000000"', ""),
        ('"1000000000.000001"', ""),
        ('"0.0000001"', ""),
        ('"1.5000000"', ""),
        ('"1."', ""),
        ('".5"', ""),
        ('"\\u0031\\u0032"', ""),
        ('"١٢"', ""),
        ("12.5", ""),
        ('"12.5"', ',"attributes":{"model":"x"}'),
        ('"12.5"', ',"calls":-1'),
        ('"12.5"', ',"account_id":"evil"'),
        ('"12.5"', ',"extra":1'),
    ],
)
def test_single_event_records_take_the_fast_path_to_the_strict_verdict(
    credits: str, rest: str
) -> None:
    # A record of one event is decoded like a batch item (fast path first); whatever it
    # holds, the outcome is the strict decoder's.
    value = (_SINGLE % (credits, rest)).encode()
    assert decode_body(value, 1 << 20) == [decode_event(value)]
