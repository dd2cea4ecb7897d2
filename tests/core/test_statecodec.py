"""Byte layout of a partition's state: keys that sort by day, values that round-trip exactly."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.alerts import AlertKey
from core.days import DAY_MS, SLOTS_PER_DAY, Bucket, DayKey, DayUsage
from core.events import ID_PATTERN
from core.ledger import PeriodKey, PeriodTotal
from core.statecodec import (
    DAY_PREFIX,
    FORMAT_VERSION,
    TAG_BYTES,
    Kind,
    alert_key,
    counter_key,
    day_columns,
    day_key,
    day_of_key,
    day_range,
    decode_day,
    decode_total,
    encode_day,
    encode_total,
    id_key,
    merge_day,
    parse_alert_key,
    parse_counter_key,
    parse_day_key,
    parse_period_key,
    parse_segment_key,
    period_key,
    segment_key,
    version_of,
)
from tests.core.support import FAST, T0

D27 = T0 // DAY_MS
ids = st.from_regex(ID_PATTERN, fullmatch=True)
event_ids = st.text(min_size=1, max_size=128)
# Days around byte boundaries of the 4-byte prefix, and real ones.
days = st.one_of(
    st.sampled_from([0, 1, 255, 256, 65_535, 65_536, 2**24 - 1, 2**24, D27, 2**32 - 1]),
    st.integers(0, 2**32 - 1),
)
tags = st.binary(min_size=TAG_BYTES, max_size=TAG_BYTES)
usages = st.builds(
    DayUsage,
    st.integers(-1, 2**63 - 1),
    st.dictionaries(
        st.integers(0, SLOTS_PER_DAY - 1),
        st.builds(
            Bucket,
            st.one_of(st.integers(0, 10**9), st.integers(0, 2**70)),
            st.one_of(st.integers(0, 10**15), st.integers(0, 2**90)),
        ),
        max_size=SLOTS_PER_DAY,
    ),
)


def test_format_and_sizes() -> None:
    assert FORMAT_VERSION == 2
    assert DAY_PREFIX == TAG_BYTES == 4
    kinds = [Kind.DAY, Kind.IDS, Kind.TOTAL, Kind.FIRED, Kind.FENCE]
    assert len(set(kinds)) == 5
    assert all(len(kind) == 1 for kind in kinds)


# ------------------------------------------------------------------ keys


def test_id_key_layout() -> None:
    assert id_key(D27, "acme", "e1") == D27.to_bytes(4, "big") + b"acme\0e1"
    assert id_key(D27, "acme", "café") == D27.to_bytes(4, "big") + "acme\0café".encode()


def test_day_key_layout() -> None:
    assert day_key(DayKey("acme", "bot", D27)) == D27.to_bytes(4, "big") + b"acme\0bot"


@FAST
@given(st.builds(DayKey, ids, ids, days))
def test_day_key_round_trips(key: DayKey) -> None:
    raw = day_key(key)
    assert parse_day_key(raw) == key
    assert day_of_key(raw) == key.day


@FAST
@given(days, ids, event_ids)
def test_id_keys_carry_their_day(day: int, account: str, event: str) -> None:
    assert day_of_key(id_key(day, account, event)) == day


@FAST
@given(st.lists(st.tuples(days, ids, ids), min_size=1, max_size=30))
def test_day_first_keys_sort_by_day(entries: list[tuple[int, str, str]]) -> None:
    keys = [day_key(DayKey(account, app, day)) for day, account, app in entries]
    keys += [id_key(day, account, event) for day, account, event in entries]
    ordered = sorted(keys)
    assert [day_of_key(key) for key in ordered] == sorted(day_of_key(key) for key in keys)


@FAST
@given(st.lists(st.tuples(days, ids, event_ids), min_size=1, max_size=30), days)
def test_a_day_range_covers_exactly_its_days(
    entries: list[tuple[int, str, str]], probe: int
) -> None:
    keys = [day_key(DayKey(account, app, day)) for day, account, app in entries]
    keys += [id_key(day, account, event) for day, account, event in entries]
    begin, end = (
        day_range(probe, probe + 1) if probe < 2**32 - 1 else (day_range(probe, 0)[0], None)
    )
    inside = {key for key in keys if begin <= key and (end is None or key < end)}
    assert inside == {key for key in keys if day_of_key(key) == probe}
    before_begin, before_end = day_range(0, probe)
    below = {key for key in keys if before_begin <= key < before_end}
    assert below == {key for key in keys if day_of_key(key) < probe}


def test_day_range_bounds() -> None:
    assert day_range(D27, D27 + 1) == (D27.to_bytes(4, "big"), (D27 + 1).to_bytes(4, "big"))
    begin, end = day_range(D27, D27 + 1)
    # The last possible key of the day is inside, the first of the next day is not.
    assert begin <= day_key(DayKey("z" * 64, "z" * 64, D27)) + b"\xff" * 100 < end
    assert not day_key(DayKey("0", "0", D27 + 1)) < end


@FAST
@given(st.builds(PeriodKey, ids, st.integers(-(2**50), 2**50), st.integers(-(2**50), 2**50)))
def test_period_key_round_trips(key: PeriodKey) -> None:
    assert parse_period_key(period_key(key)) == key


@FAST
@given(st.builds(AlertKey, ids, st.integers(-(2**50), 2**50), st.integers(1, 10_000)))
def test_alert_key_round_trips(key: AlertKey) -> None:
    assert parse_alert_key(alert_key(key)) == key


@FAST
@given(days, tags, st.integers(0, 2**32 - 1))
def test_segment_key_round_trips(day: int, tag: bytes, seq: int) -> None:
    raw = segment_key(day, tag, seq)
    assert raw[:1] == Kind.IDS
    assert raw[1 : 1 + DAY_PREFIX] == day.to_bytes(4, "big")  # day first after the kind
    assert parse_segment_key(raw) == (day, tag, seq)


@FAST
@given(days, tags, days)
def test_counter_keys_round_trip_and_sort_by_day(day: int, tag: bytes, before: int) -> None:
    raw = counter_key(day, tag)
    assert parse_counter_key(raw) == (day, tag)
    # The expiry scan takes every counter of the days before ``before``, whatever the tag.
    inside = counter_key(0, b"") <= raw < counter_key(before, b"")
    assert inside == (day < before)


# ------------------------------------------------------------------ values


def test_day_value_layout() -> None:
    usage = DayUsage(41, {95: Bucket(1, 500_000), 0: Bucket(3, 12_500_000)})
    raw = encode_day(usage)
    # The version first, fixed-width, so a restore compares versions without decoding.
    assert raw[:8] == (41).to_bytes(8, "big")
    assert version_of(raw) == 41
    assert msgspec.msgpack.decode(raw[8:]) == [0, 3, 12_500_000, 95, 1, 500_000]
    assert decode_day(raw) == usage


@FAST
@given(usages)
def test_day_values_round_trip_including_sums_past_64_bits(usage: DayUsage) -> None:
    assert decode_day(encode_day(usage)) == usage


@FAST
@given(usages)
def test_a_stored_day_reads_as_the_columns_of_its_usage(usage: DayUsage) -> None:
    # What publication encodes from: the same columns the decoded day would give.
    columns = day_columns(encode_day(usage))
    assert columns.version == usage.version
    assert [list(column) for column in columns[1:]] == [
        list(column) for column in usage.columns()[1:]
    ]


added_slots = st.dictionaries(
    st.integers(0, SLOTS_PER_DAY - 1),
    st.tuples(
        st.one_of(st.integers(0, 10**6), st.integers(0, 2**66)),
        st.one_of(st.integers(0, 10**12), st.integers(0, 2**80)),
    ),
)


@FAST
@given(st.one_of(st.none(), usages), added_slots, st.integers(0, 2**63 - 1))
def test_merging_into_a_day_adds_every_slot_exactly(
    stored: DayUsage | None, added: dict[int, tuple[int, int]], version: int
) -> None:
    # The reference: decode every slot, add, encode. merge_day touches only the added slots
    # (slots it already holds in place, new ones sorted in); the bytes must be the same.
    slots = dict(stored.slots) if stored else {}
    for slot, (calls, micro) in added.items():
        known = slots.get(slot, Bucket(0, 0))
        slots[slot] = Bucket(known.calls + calls, known.micro + micro)
    raw = None if stored is None else encode_day(stored)
    merged = merge_day(raw, version, {slot: list(pair) for slot, pair in added.items()})
    assert merged == encode_day(DayUsage(version, slots))


def test_merging_new_slots_into_a_full_day_keeps_slots_sorted() -> None:
    stored = encode_day(DayUsage(1, {slot: Bucket(1, 10) for slot in range(0, 96, 2)}))
    merged = decode_day(merge_day(stored, 2, {95: [1, 5], 1: [2, 3], 0: [1, 1]}))
    assert list(merged.slots) == sorted(merged.slots)
    assert merged.slots[0] == Bucket(2, 11)
    assert merged.slots[1] == Bucket(2, 3)
    assert merged.slots[95] == Bucket(1, 5)
    assert len(merged.slots) == 50


def test_a_sum_past_64_bits_is_kept_exact() -> None:
    usage = DayUsage(3, {0: Bucket(1, 2**64), 5: Bucket(2**64 + 1, 7)})
    assert decode_day(encode_day(usage)) == usage
    # Within 64 bits the value stays a plain msgpack integer.
    assert msgspec.msgpack.decode(encode_day(DayUsage(3, {0: Bucket(1, 2**63)}))[8:]) == [
        0,
        1,
        2**63,
    ]


@pytest.mark.parametrize(
    "total",
    [
        PeriodTotal(0, -1, 0),
        PeriodTotal(120_000_000, 9, 1_793_491_200_000, "e0"),
        PeriodTotal(2**64, 9, 5, "e-ü"),
        PeriodTotal(10**30, 2**62, -(2**40), "x" * 128),
    ],
)
def test_period_totals_round_trip_including_past_64_bits(total: PeriodTotal) -> None:
    assert decode_total(encode_total(total)) == total


@FAST
@given(
    st.builds(
        PeriodTotal,
        st.one_of(st.integers(0, 2**63), st.integers(0, 2**100)),
        st.integers(-1, 2**63 - 1),
        st.integers(-(2**50), 2**50),
        st.text(max_size=128),
    )
)
def test_any_period_total_round_trips(total: PeriodTotal) -> None:
    assert decode_total(encode_total(total)) == total
