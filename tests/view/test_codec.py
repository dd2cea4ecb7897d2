"""Binary values of the view (pure: no Redis): days and month rows read back exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.days import Bucket, DayUsage
from core.usage import MonthDays, SlotPrefix
from tests.core.support import FAST
from tests.view.legacy import without_counts
from view.codec import (
    DAYS_PER_MONTH,
    ENTRY_SIZE,
    NARROW_SIZE,
    PackedDay,
    ViewValueError,
    decode_day,
    edge_usage,
    encode,
    entries,
    month_days,
    narrow,
)


def encode_day(usage: DayUsage) -> bytes:
    return encode(usage.columns())[0]


def day_total(usage: DayUsage) -> bytes:
    return encode(usage.columns())[1]


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
    # A value written before days carried their bucket counts reads the same.
    legacy = without_counts(blob)
    assert len(legacy) == len(blob) - 11
    assert decode_day(legacy) == usage


def test_an_empty_day_is_a_version_with_no_buckets() -> None:
    blob = encode_day(DayUsage(7, {}))
    assert decode_day(blob) == DayUsage(7, {})
    assert PackedDay(blob).before(96) == (0, 0, 0)


def test_a_dense_day_stays_small() -> None:
    dense = {slot: Bucket(12, 1_234_567_890) for slot in range(96)}
    assert len(encode_day(DayUsage(10**9, dense))) <= 11 + 14 + 11 + 96 * (2 + 5)


def test_a_day_counts_its_buckets_below_each_bitmap_byte() -> None:
    # Slots 0, 9, 10 and 95: bytes 1..k of the bitmap hold 1, 3, 3, ... 3 of them.
    blob = encode_day(DayUsage(4, {slot: Bucket(1, 1) for slot in (0, 9, 10, 95)}))
    widths = blob.index(b":") + 1 + 12
    assert blob[widths] == 0x80 | 1
    assert list(blob[widths + 2 : widths + 2 + 11]) == [1] + [3] * 10


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
    assert month_days(row).micro[0] == 2_000_000_000 * 10**6 + BIG


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


@FAST
@given(st.dictionaries(st.integers(1, 31), slots.map(lambda s: DayUsage(1, s))))
def test_a_narrow_row_reads_as_its_wide_form_when_every_day_fits(
    days: dict[int, DayUsage],
) -> None:
    wide = bytearray(DAYS_PER_MONTH * ENTRY_SIZE)
    for day, usage in days.items():
        wide[(day - 1) * ENTRY_SIZE : day * ENTRY_SIZE] = day_total(usage)
    original = [bytes(wide[d * ENTRY_SIZE : (d + 1) * ENTRY_SIZE]) for d in range(31)]
    entries = [narrow(entry) for entry in original]
    fits = [max(usage.total) < 2**64 for usage in days.values()]
    if all(fits):
        assert all(len(entry) == NARROW_SIZE for entry in entries)
        assert month_days(b"".join(entries)) == month_days(bytes(wide))
    else:  # a day needs more than 64 bits: its entry stays wide, exactly as it was
        assert [e for e in entries if len(e) == ENTRY_SIZE] == [
            day_total(usage) for day, usage in sorted(days.items()) if max(usage.total) >= 2**64
        ]


def test_narrow_entries_are_17_bytes_and_keep_64_bit_totals() -> None:
    usage = DayUsage(1, {0: Bucket(2**64 - 1, 2**64 - 2)})
    entry = narrow(day_total(usage))
    assert len(entry) == NARROW_SIZE == 17
    row = entry + bytes((DAYS_PER_MONTH - 1) * NARROW_SIZE)
    assert month_days(row).calls[0] == 2**64 - 1
    assert month_days(row).micro[0] == 2**64 - 2
    wider = day_total(DayUsage(1, {0: Bucket(1, 2**64)}))
    assert narrow(wider) == wider  # 2**64 micro-credits do not fit: the entry stays wide


def test_edge_usage_decodes_narrow_and_wide_runs() -> None:
    totals = [(3, 40, 5_000_000), (0, 0, 0), (96, 2**63, 2**64 - 1)]
    edges = [(20_000, 4), (20_001, 4), (20_002, 95)]
    wide = b"".join(day_total(_day_with(*t)) for t in totals)
    assert dict(edge_usage(wide, edges)) == dict(zip(edges, totals, strict=True))
    narrowed = b"".join(narrow(day_total(_day_with(*t))) for t in totals)
    assert dict(edge_usage(narrowed, edges)) == dict(zip(edges, totals, strict=True))
    huge = (1, 2**95, BIG)
    assert edge_usage(day_total(_day_with(*huge)), edges[:1])[edges[0]] == huge
    # entries() packs the same bytes: all narrow when every total fits 64 bits, else all wide.
    assert entries(totals) == narrowed
    assert entries([*totals, huge]) == wide + day_total(_day_with(*huge))
    assert len(entries([(96, 2**64 - 1, 2**64 - 1)])) == NARROW_SIZE


def _day_with(buckets: int, calls: int, micro: int) -> DayUsage:
    """A day of ``buckets`` non-empty buckets holding ``calls`` and ``micro`` in all."""
    if not buckets:
        return DayUsage(1, {})
    slots = {slot: Bucket(0, 0) for slot in range(buckets - 1)}
    slots[buckets - 1] = Bucket(calls, micro)
    return DayUsage(1, slots)
