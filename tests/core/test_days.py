"""The (account, app, UTC day) value and its ``usage.buckets.v1`` record (format 2)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.days import (
    DAY_MS,
    DAY_RECORD_FORMAT,
    SLOTS_PER_DAY,
    Bucket,
    DayKey,
    DayRecordError,
    DayUsage,
    day_of,
    day_record,
    day_record_key,
    iso_day,
    parse_day_record,
    slot_of,
)
from core.events import ID_PATTERN
from tests.core.support import FAST, T0

D27 = T0 // DAY_MS
KEY = DayKey("acme", "support-bot", D27)
USAGE = DayUsage(41, {95: Bucket(1, 500_000), 0: Bucket(3, 12_500_000)})

ids = st.from_regex(ID_PATTERN, fullmatch=True)
usages = st.builds(
    DayUsage,
    st.integers(-1, 2**63 - 1),
    st.dictionaries(
        st.integers(0, SLOTS_PER_DAY - 1),
        st.builds(Bucket, st.integers(0, 2**70), st.integers(0, 2**80)),
        max_size=SLOTS_PER_DAY,
    ),
)


def test_a_day_has_96_slots_of_fifteen_minutes() -> None:
    assert DAY_MS == 86_400_000
    assert SLOTS_PER_DAY == 96
    assert DAY_RECORD_FORMAT == 2


@pytest.mark.parametrize(
    ("instant", "day", "slot"),
    [
        (0, 0, 0),
        (DAY_MS - 1, 0, 95),
        (DAY_MS, 1, 0),
        (-1, -1, 95),  # floors, also before the epoch
        (T0, D27, 0),
        (T0 + 4 * 3_600_000 + 12 * 60_000, D27, 16),  # 04:12 -> [04:00, 04:15)
        (T0 + DAY_MS - 900_000, D27, 95),
    ],
)
def test_day_of_and_slot_of(instant: int, day: int, slot: int) -> None:
    assert (day_of(instant), slot_of(instant)) == (day, slot)


def test_iso_day() -> None:
    assert iso_day(0) == "1970-01-01"
    assert iso_day(D27) == "2026-11-27"
    assert iso_day(D27 + 35) == "2027-01-01"


def test_total_sums_every_slot() -> None:
    assert USAGE.total == Bucket(4, 13_000_000)
    assert DayUsage(0, {}).total == Bucket(0, 0)


# ------------------------------------------------------------------ the day record


def test_day_record_key_is_account_app_and_iso_day() -> None:
    assert day_record_key(KEY) == b"acme|support-bot|2026-11-27"


def test_day_record_wire_format() -> None:
    raw = day_record(KEY, USAGE.columns(), 3)
    assert json.loads(raw) == {
        "format": 2,
        "account_id": "acme",
        "app_id": "support-bot",
        "day": "2026-11-27",
        "version": 41,
        "calls": 4,
        "credits": "13",
        "slots": [[0, 3, "12.5"], [95, 1, "0.5"]],  # by slot, credits exact decimal strings
        "source_partition": 3,
    }
    assert b" " not in raw  # compact


def test_parse_day_record_round_trip() -> None:
    assert parse_day_record(day_record(KEY, USAGE.columns(), 3)) == (KEY, USAGE)


@FAST
@given(st.builds(DayKey, ids, ids, st.integers(0, 2_932_896)), usages, st.integers(-1, 2**31))
def test_any_day_round_trips_including_totals_past_64_bits(
    key: DayKey, usage: DayUsage, partition: int
) -> None:
    assert parse_day_record(day_record(key, usage.columns(), partition)) == (key, usage)


def test_an_empty_day_round_trips() -> None:
    assert parse_day_record(day_record(KEY, DayUsage(7, {}).columns(), 0)) == (KEY, DayUsage(7, {}))


def _record(**fields: Any) -> bytes:
    body = json.loads(day_record(KEY, USAGE.columns(), 3))
    body.update(fields)
    return json.dumps(body).encode()


def test_unknown_fields_are_ignored() -> None:
    assert parse_day_record(_record(extra={"x": 1})) == (KEY, USAGE)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (_record(format=1), "unsupported day record format 1"),
        (_record(format=3), "unsupported day record format 3"),
        (_record(slots=[[96, 1, "1"]]), "slot 96 out of range"),
        (_record(slots=[[-1, 1, "1"]]), "slot -1 out of range"),
        (_record(slots=[[0, -1, "1"]]), "negative calls"),
        (_record(slots=[[0, 1, "-1"]]), "unreadable day record"),
        (_record(slots=[[0, 1, "1.0000001"]]), "unreadable day record"),
        (_record(slots=[[0, 1, 1.5]]), "unreadable day record"),
        (_record(slots=[[0, 1]]), "unreadable day record"),
        (_record(day="2026-02-30"), "unreadable day record"),
        (_record(day=20419), "unreadable day record"),
        (_record(version="41"), "unreadable day record"),
        (b"{", "unreadable day record"),
        (b"[]", "unreadable day record"),
        (b"", "unreadable day record"),
        (b"\xff\xfe", "unreadable day record"),
        (json.dumps({"format": 2}).encode(), "unreadable day record"),
    ],
)
def test_bad_day_records_are_refused_with_a_reason(value: bytes, says: str) -> None:
    with pytest.raises(DayRecordError, match=says):
        parse_day_record(value)


@pytest.mark.parametrize(
    "value",
    [
        _record(day="9" * 100_000),
        _record(slots=[[0, 1, "7" * 100_000]]),
        _record(slots=[[0, 1, "x" * 100_000]]),
        _record(account_id=["a" * 100_000]),
        b'{"format": 2, "day": "' + b"\xff" * 50_000 + b'"}',
    ],
)
def test_refusals_quote_a_bounded_part_of_the_input(value: bytes) -> None:
    with pytest.raises(DayRecordError) as raised:
        parse_day_record(value)
    assert len(str(raised.value)) <= 300
