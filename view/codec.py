"""Binary values of the serving view: a day's buckets, and the day totals of a month.

Lua only compares versions and copies bytes; every sum is made here, with Python integers, so
totals stay exact however large they grow (Lua numbers are doubles, exact only to 2**53).

* A **day** (``s`` hash value) is ``b"<version>:"``, a 96-bit little-endian bitmap of the
  non-empty slots, the widths in bytes of calls and of micro-credits, then for each non-empty
  slot in order the running totals of the day up to and including it. The usage before any
  slot is one popcount and two reads, whatever the day holds.
* A **month row** (``t`` hash value) is 31 fixed-width entries, one per day of the month:
  non-empty buckets (1 byte), calls (96 bits), micro-credits (160 bits), little-endian. Any
  day the bucket topic can describe fits (at most 96 buckets of 40-digit totals).
"""

from __future__ import annotations

import struct
from itertools import accumulate
from typing import Final

from core.days import SLOTS_PER_DAY, Bucket, DayUsage
from core.usage import MonthDays, Totals

__all__ = (
    "DAYS_PER_MONTH",
    "ENTRY_SIZE",
    "PackedDay",
    "ViewValueError",
    "day_total",
    "decode_day",
    "encode_day",
    "month_days",
)

DAYS_PER_MONTH: Final = 31
_ENTRY = "BQIQQI"  # buckets; calls as 64 + 32 bits; micro-credits as 64 + 64 + 32 bits
ENTRY_SIZE: Final = struct.calcsize("<" + _ENTRY)
_ROW = struct.Struct("<" + _ENTRY * DAYS_PER_MONTH)
_CALLS_LIMIT = 1 << 96
_MICRO_LIMIT = 1 << 160
_BITMAP_BYTES = SLOTS_PER_DAY // 8
_U64 = (1 << 64) - 1


class ViewValueError(ValueError):
    """A day value the view cannot hold (negative, or beyond any sum of real events)."""


def _check(usage: DayUsage) -> Bucket:
    calls, micro = usage.total
    if usage.version < 0 or not 0 <= calls < _CALLS_LIMIT or not 0 <= micro < _MICRO_LIMIT:
        raise ViewValueError(
            f"day totals out of range for the view (version {usage.version}, "
            f"{str(calls)[:40]} calls, {str(micro)[:60]} micro-credits)"
        )
    for slot, bucket in usage.slots.items():
        if not 0 <= slot < SLOTS_PER_DAY or bucket.calls < 0 or bucket.micro < 0:
            raise ViewValueError(f"slot {slot} out of range or negative")
    return Bucket(calls, micro)


def day_total(usage: DayUsage) -> bytes:
    """The month-row entry of a day: its bucket count and totals."""
    calls, micro = _check(usage)
    return struct.pack(
        "<" + _ENTRY,
        len(usage.slots),
        calls & _U64,
        calls >> 64,
        micro & _U64,
        micro >> 64 & _U64,
        micro >> 128,
    )


def encode_day(usage: DayUsage) -> bytes:
    """The ``s`` value of a day: version, slot bitmap, widths, running totals."""
    calls_total, micro_total = _check(usage)
    calls_width = max(1, (calls_total.bit_length() + 7) // 8)
    micro_width = max(1, (micro_total.bit_length() + 7) // 8)
    bitmap = 0
    calls = micro = 0
    parts = [b"%d:" % usage.version, b"", bytes((calls_width, micro_width))]
    for slot, bucket in sorted(usage.slots.items()):
        bitmap |= 1 << slot
        calls += bucket.calls
        micro += bucket.micro
        parts.append(calls.to_bytes(calls_width, "little") + micro.to_bytes(micro_width, "little"))
    parts[1] = bitmap.to_bytes(_BITMAP_BYTES, "little")
    return b"".join(parts)


class PackedDay:
    """The prefix sums of an encoded day (:class:`core.usage.DaySlots`), read in place."""

    __slots__ = ("_base", "_bitmap", "_blob", "_calls_width", "_step")

    def __init__(self, blob: bytes) -> None:
        head = blob.index(b":") + 1
        self._blob = blob
        self._bitmap = int.from_bytes(blob[head : head + _BITMAP_BYTES], "little")
        self._calls_width = blob[head + _BITMAP_BYTES]
        self._step = self._calls_width + blob[head + _BITMAP_BYTES + 1]
        self._base = head + _BITMAP_BYTES + 2

    @property
    def bitmap(self) -> int:
        """Bit ``s`` set when slot ``s`` holds a bucket."""
        return self._bitmap

    def before(self, slot: int) -> Totals:
        """Totals of the day's buckets in slots ``0 .. slot - 1``."""
        count = (self._bitmap & ((1 << slot) - 1)).bit_count()
        if not count:
            return 0, 0, 0
        start = self._base + (count - 1) * self._step
        middle = start + self._calls_width
        blob = self._blob
        return (
            count,
            int.from_bytes(blob[start:middle], "little"),
            int.from_bytes(blob[middle : start + self._step], "little"),
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


def month_days(row: bytes) -> MonthDays:
    """A month row as prefix sums of its day totals."""
    values = _ROW.unpack(row)
    calls = values[1::6]
    if any(values[2::6]):
        calls = tuple(low | high << 64 for low, high in zip(calls, values[2::6], strict=True))
    micro = values[3::6]
    if any(values[4::6]) or any(values[5::6]):
        micro = tuple(
            low | middle << 64 | high << 128
            for low, middle, high in zip(micro, values[4::6], values[5::6], strict=True)
        )
    return MonthDays(
        list(accumulate(values[0::6], initial=0)),
        list(accumulate(calls, initial=0)),
        list(accumulate(micro, initial=0)),
    )
