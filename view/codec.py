"""Binary values of the serving view: a day's buckets, and the day totals of a month.

Lua only compares versions and copies bytes; every sum is made here, with Python integers, so
totals stay exact however large they grow (Lua numbers are doubles, exact only to 2**53).

* A **day** (``s`` hash value) is ``b"<version>:"``, a 96-bit little-endian bitmap of the
  non-empty slots, the widths in bytes of calls and of micro-credits, 11 counts (the non-empty
  slots in the bitmap's bytes 1..k, for k = 1..11), then for each non-empty slot in order the
  running totals of the day up to and including it. The usage before any slot is three reads,
  whatever the day holds: a count, the bits of one bitmap byte, and that entry. The high bit of
  the calls width says the counts are there; a day written before they were (no high bit) is
  read by counting the bitmap's bits instead, until it is next written.
* A **month row** (``t`` hash value) is 31 fixed-width entries, one per day of the month:
  non-empty buckets (1 byte), calls and micro-credits, little-endian. An entry is *wide*
  (calls 96 bits, micro-credits 160 bits: any day the bucket topic can describe, at most 96
  buckets of 40-digit totals) or, while both totals fit 64 bits (any day below 18 trillion
  credits), *narrow*: 17 bytes instead of 33. A row is narrow until a wide day arrives; the
  write script then widens it by padding bytes, so a row's length says its form.
* An **edge record** (what ``read_days.lua`` returns for a window edge inside a day) is such an
  entry holding the day's usage before the edge's slot, which the script cuts from the day
  value: the number of non-empty slots below the slot, that entry's running totals, zero-padded
  (narrow when they fit, else the app's records of that month are all wide).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache
from itertools import accumulate
from typing import Final

from core.days import SLOTS_PER_DAY, Bucket, DayColumns, DayUsage
from core.usage import EdgeUsage, MonthDays, Totals

__all__ = (
    "DAYS_PER_MONTH",
    "ENTRY_SIZE",
    "NARROW_SIZE",
    "PackedDay",
    "ViewValueError",
    "decode_day",
    "edge_usage",
    "encode",
    "entries",
    "month_days",
    "narrow",
)

DAYS_PER_MONTH: Final = 31
_ENTRY = "BQIQQI"  # buckets; calls as 64 + 32 bits; micro-credits as 64 + 64 + 32 bits
ENTRY_SIZE: Final = struct.calcsize("<" + _ENTRY)
_ENTRY_STRUCT = struct.Struct("<" + _ENTRY)
_ROW = struct.Struct("<" + _ENTRY * DAYS_PER_MONTH)
_NARROW = "BQQ"  # buckets; calls; micro-credits, 64 bits each
NARROW_SIZE: Final = struct.calcsize("<" + _NARROW)
_NARROW_ROW = struct.Struct("<" + _NARROW * DAYS_PER_MONTH)
_WIDE_PARTS = b"\0" * 16  # the high parts of a wide entry that a narrow one leaves out
_CALLS_LIMIT = 1 << 96
_MICRO_LIMIT = 1 << 160
_BITMAP_BYTES = SLOTS_PER_DAY // 8
_COUNTS = _BITMAP_BYTES - 1  # an edge inside a day (slot 1..95) has at most 11 whole bytes below
_COUNTED = 0x80  # in the calls width (at most 12): the counts follow the widths
_U64 = (1 << 64) - 1
_BIT = tuple(1 << slot for slot in range(SLOTS_PER_DAY))


class ViewValueError(ValueError):
    """A day value the view cannot hold (negative, or beyond any sum of real events)."""


def encode(day: DayColumns) -> tuple[bytes, bytes]:
    """A day's ``s`` value (version, slot bitmap, widths, running totals) and month-row entry.

    :class:`ViewValueError` for a day the view cannot hold.
    """
    # A column at a time: a dense day took 42 us slot by slot, ~25 us so.
    version, order, slot_calls, slot_micro = day
    calls = list(accumulate(slot_calls, initial=0))
    micro = list(accumulate(slot_micro, initial=0))
    lowest = min(min(slot_calls, default=0), min(slot_micro, default=0))
    if (
        version < 0
        or lowest < 0
        or (order and not 0 <= order[0] <= order[-1] < SLOTS_PER_DAY)
        or calls[-1] >= _CALLS_LIMIT
        or micro[-1] >= _MICRO_LIMIT
    ):
        raise ViewValueError(
            f"day out of range for the view (version {version}, slots "
            f"{order[0] if order else '-'}..{order[-1] if order else '-'}, "
            f"{str(calls[-1])[:40]} calls, {str(micro[-1])[:60]} micro-credits, lowest {lowest})"
        )
    calls_width = max(1, (calls[-1].bit_length() + 7) // 8)
    micro_width = max(1, (micro[-1].bit_length() + 7) // 8)
    shift, size = 8 * calls_width, calls_width + micro_width
    entries = b"".join(
        [
            (c | m << shift).to_bytes(size, "little")
            for c, m in zip(calls[1:], micro[1:], strict=True)
        ]
    )
    bitmap = sum(map(_BIT.__getitem__, order))
    bitmap_bytes = bitmap.to_bytes(_BITMAP_BYTES, "little")
    value = b"".join(
        (
            b"%d:" % version,
            bitmap_bytes,
            bytes((calls_width | _COUNTED, micro_width)),
            bytes(accumulate(byte.bit_count() for byte in bitmap_bytes[:_COUNTS])),
            entries,
        )
    )
    return value, _wide_entry((len(order), calls[-1], micro[-1]))


def _wide_entry(totals: Totals) -> bytes:
    buckets, calls, micro = totals
    return _ENTRY_STRUCT.pack(
        buckets, calls & _U64, calls >> 64, micro & _U64, micro >> 64 & _U64, micro >> 128
    )


def entries(totals: Sequence[Totals]) -> bytes:
    """``(buckets, calls, micro-credits)`` each as a month-row entry or edge record.

    All narrow if every one fits, else all wide: the form of a month row, and of what
    ``read_days.lua`` returns for an app's edges in a month (built here for tools and
    benchmarks).
    """
    wide = [_wide_entry(each) for each in totals]
    narrowed = [narrow(each) for each in wide]
    if all(len(each) == NARROW_SIZE for each in narrowed):
        return b"".join(narrowed)
    return b"".join(wide)


class PackedDay:
    """The prefix sums of an encoded day (:class:`core.usage.DaySlots`), read in place.

    Most days are asked once (the edge of a daily window), so nothing is parsed up front.
    """

    __slots__ = ("_blob",)

    def __init__(self, blob: bytes) -> None:
        self._blob = blob

    @property
    def bitmap(self) -> int:
        """Bit ``s`` set when slot ``s`` holds a bucket."""
        head = self._blob.index(58) + 1  # after b":"
        return int.from_bytes(self._blob[head : head + _BITMAP_BYTES], "little")

    def before(self, slot: int) -> Totals:
        """Totals of the day's buckets in slots ``0 .. slot - 1``."""
        blob = self._blob
        head = blob.index(58) + 1
        bitmap = int.from_bytes(blob[head : head + _BITMAP_BYTES], "little")
        count = (bitmap & ((1 << slot) - 1)).bit_count()
        if not count:
            return 0, 0, 0
        calls_width = blob[head + _BITMAP_BYTES]
        entries = head + _BITMAP_BYTES + 2
        if calls_width & _COUNTED:
            calls_width ^= _COUNTED
            entries += _COUNTS
        step = calls_width + blob[head + _BITMAP_BYTES + 1]
        start = entries + (count - 1) * step
        middle = start + calls_width
        return (
            count,
            int.from_bytes(blob[start:middle], "little"),
            int.from_bytes(blob[middle : start + step], "little"),
        )


def decode_day(blob: bytes) -> DayUsage:
    """A whole encoded day back as a :class:`DayUsage` (tools and tests)."""
    version = int(blob[: blob.index(b":")])
    day = PackedDay(blob)
    slots = {}
    previous = (0, 0, 0)
    for slot in range(SLOTS_PER_DAY):
        if day.bitmap >> slot & 1:
            current = day.before(slot + 1)
            slots[slot] = Bucket(current[1] - previous[1], current[2] - previous[2])
            previous = current
    return DayUsage(version, slots)


def _wide_columns(values: Sequence[int]) -> tuple[Sequence[int], Sequence[int], Sequence[int]]:
    """Buckets, calls and micro-credits of unpacked entries (the wide parts joined if used)."""
    calls = values[1::6]
    if any(values[2::6]):
        calls = tuple(low | high << 64 for low, high in zip(calls, values[2::6], strict=True))
    micro = values[3::6]
    if any(values[4::6]) or any(values[5::6]):
        micro = tuple(
            low | middle << 64 | high << 128
            for low, middle, high in zip(micro, values[4::6], values[5::6], strict=True)
        )
    return values[0::6], calls, micro


def narrow(entry: bytes) -> bytes:
    """A wide month-row entry in its narrow form when its totals fit, else unchanged."""
    if entry[9:13] + entry[21:] == _WIDE_PARTS:
        return entry[:9] + entry[13:21]
    return entry


def _narrow_columns(values: Sequence[int]) -> tuple[Sequence[int], Sequence[int], Sequence[int]]:
    return values[0::3], values[1::3], values[2::3]


def month_days(row: bytes) -> MonthDays:
    """A month row (narrow or wide) as its day totals."""
    if len(row) == _NARROW_ROW.size:
        return MonthDays(*_narrow_columns(_NARROW_ROW.unpack(row)))
    return MonthDays(*_wide_columns(_ROW.unpack(row)))


@lru_cache(maxsize=1024)
def _records(form: str, count: int) -> struct.Struct:
    return struct.Struct("<" + form * count)


def edge_usage(blob: bytes, edges: Sequence[tuple[int, int]]) -> EdgeUsage:
    """The edge records of ``edges``, one after the other (all narrow or all wide)."""
    count = len(edges)
    if len(blob) == count * NARROW_SIZE:
        columns = _narrow_columns(_records(_NARROW, count).unpack(blob))
    else:
        columns = _wide_columns(_records(_ENTRY, count).unpack(blob))
    return EdgeUsage(edges, *columns)
