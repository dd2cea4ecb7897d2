"""Binary values of the view (pure: no Redis): days and month rows read back exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.days import Bucket, DayUsage
from core.usage import MonthDays, SlotPrefix
from tests.core.support import FAST
from view.codec import (
    DAYS_PER_MONTH,
    ENTRY_SIZE,
    PackedDay,
    ViewValueError,
    decode_day,
    encode,
    month_days,
)


def encode_day(usage: DayUsage) -> bytes:
    return encode(usage)[0]


def day_total(usage: DayUsage) -> bytes:
    return encode(usage)[1]


BIG = 10**46  # a 40-digit total of credits, in micro-credits: the most a day record can say

slots = st.dictionaries(
    st.integers(0, 95),
    st.builds(
        Bucket, st.integers(0, 10**12), st.one_of(st.integers(0, 10**9), st.integers(0, BIG))
    ),
    max_size=96,
)


@FAST
@given(slots, st.integers(0, 2**53))
def test_a_day_reads_back_exactly_and_its_prefixes_match(
    day_slots: dict[int, Bucket], version: int
) -> None:
    usage = DayUsage(version, day_slots)
    blob = encode_day(usage)
    assert blob.startswith(b"%d:" % version)
    assert decode_day(blob) == usage
    packed, plain = PackedDay(blob), SlotPrefix(day_slots)
    for slot in range(97):
        assert packed.before(slot) == plain.before(slot)


def test_an_empty_day_is_a_version_with_no_buckets() -> None:
    blob = encode_day(DayUsage(7, {}))
    assert decode_day(blob) == DayUsage(7, {})
    assert PackedDay(blob).before(96) == (0, 0, 0)


def test_a_dense_day_stays_small() -> None:
    dense = {slot: Bucket(12, 1_234_567_890) for slot in range(96)}
    assert len(encode_day(DayUsage(10**9, dense))) <= 11 + 14 + 96 * (2 + 5)


@FAST
@given(st.dictionaries(st.integers(1, 31), slots.filter(bool).map(lambda s: DayUsage(1, s))))
def test_a_month_row_holds_each_days_totals(days: dict[int, DayUsage]) -> None:
    row = bytearray(DAYS_PER_MONTH * ENTRY_SIZE)
    for day, usage in days.items():
        row[(day - 1) * ENTRY_SIZE : day * ENTRY_SIZE] = day_total(usage)
    expected = MonthDays.from_totals(
        {day: (len(usage.slots), *usage.total) for day, usage in days.items()}
    )
    assert month_days(bytes(row)) == expected


def test_totals_beyond_two_billion_credits_are_exact() -> None:
    usage = DayUsage(3, {0: Bucket(2, 2_000_000_000 * 10**6), 95: Bucket(1, BIG)})
    assert decode_day(encode_day(usage)) == usage
    row = day_total(usage) + bytes((DAYS_PER_MONTH - 1) * ENTRY_SIZE)
    assert month_days(row).micro[1] == 2_000_000_000 * 10**6 + BIG


@pytest.mark.parametrize(
    "usage",
    [
        DayUsage(1, {0: Bucket(-1, 0)}),
        DayUsage(1, {0: Bucket(0, -1)}),
        DayUsage(-1, {}),
        DayUsage(1, {96: Bucket(1, 1)}),
        DayUsage(1, {0: Bucket(2**96, 0)}),
        DayUsage(1, {0: Bucket(0, 2**160)}),
    ],
)
def test_values_the_view_cannot_hold_are_refused_clearly(usage: DayUsage) -> None:
    with pytest.raises(ViewValueError):
        encode_day(usage)
    with pytest.raises(ViewValueError):
        day_total(usage)
