"""Usage by (account, app, UTC day): the unit the worker stores, publishes and the view serves.

A day holds the absolute totals of its non-empty 15-minute buckets (96 slots) and a version,
the input offset of its last change. Every writer of a day is the one partition that owns the
account, so versions only grow: a reader keeps the value with the larger version and can apply
records in any order, any number of times.

This module owns the day record of ``usage.buckets.v1`` (format 2): its key and its JSON value.
One record per changed day, rather than per bucket, is what keeps backfills (events spread
over many buckets) and the serving view compact: a batch that touches 40 buckets of a day
publishes one record, not 40.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Final, NamedTuple

import msgspec

from core.buckets import BUCKET_MS
from core.money import CreditsError, format_micro, micro_from_total

__all__ = (
    "DAY_MS",
    "DAY_RECORD_FORMAT",
    "SLOTS_PER_DAY",
    "Bucket",
    "DayColumns",
    "DayKey",
    "DayRecordError",
    "DayUsage",
    "day_of",
    "day_record",
    "day_record_key",
    "iso_day",
    "parse_day_record",
    "slot_of",
)

DAY_MS: Final = 86_400_000
SLOTS_PER_DAY: Final = DAY_MS // BUCKET_MS
DAY_RECORD_FORMAT: Final = 2


class Bucket(NamedTuple):
    """Totals of one 15-minute bucket: calls and micro-credits."""

    calls: int
    micro: int


class DayKey(NamedTuple):
    """An account's app on one UTC day (days since 1970-01-01)."""

    account_id: str
    app_id: str
    day: int


class DayUsage(NamedTuple):
    """Absolute totals of a day's non-empty buckets, by slot (0-95), and the day's version."""

    version: int
    slots: dict[int, Bucket]

    @property
    def total(self) -> Bucket:
        """Calls and micro-credits of the whole day."""
        return Bucket(
            sum(bucket.calls for bucket in self.slots.values()),
            sum(bucket.micro for bucket in self.slots.values()),
        )

    def columns(self) -> DayColumns:
        """The same day as columns (what publication encodes)."""
        order = sorted(self.slots)
        if not order:
            return DayColumns(self.version, order, (), ())
        calls, micro = zip(*map(self.slots.__getitem__, order), strict=True)
        return DayColumns(self.version, order, calls, micro)


class DayColumns(NamedTuple):
    """A day's usage as columns: version, non-empty slots in order, their calls and micro.

    The form every published day is encoded from (its bucket record, its view value): both
    encodings run C loops (zip, map, accumulate) over columns instead of a tuple per bucket,
    and a stored day value reads straight into columns (:func:`core.statecodec.day_columns`)
    without building a :class:`DayUsage` first.
    """

    version: int
    order: Sequence[int]
    calls: Sequence[int]
    micro: Sequence[int]


def day_of(epoch_ms: int) -> int:
    """The UTC day number of an instant."""
    return epoch_ms // DAY_MS


def slot_of(epoch_ms: int) -> int:
    """The 15-minute slot (0-95) of an instant within its UTC day."""
    return epoch_ms % DAY_MS // BUCKET_MS


@lru_cache(maxsize=4096)
def iso_day(day: int) -> str:
    """``YYYY-MM-DD`` of a day number."""
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")


class DayRecordError(ValueError):
    """A ``usage.buckets.v1`` value that is not a readable day record."""


class _Record(msgspec.Struct, forbid_unknown_fields=False):
    format: int
    account_id: str
    app_id: str
    day: str
    version: int
    slots: list[tuple[int, int, str]]
    source_partition: int = -1


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Record)
_EPOCH_DAY = date(1970, 1, 1)


def day_record_key(key: DayKey) -> bytes:
    """Compaction key of a day record: ``account|app|YYYY-MM-DD``."""
    return f"{key.account_id}|{key.app_id}|{iso_day(key.day)}".encode()


def day_record(key: DayKey, day: DayColumns, source_partition: int) -> bytes:
    """The JSON value of a day record (credits as exact decimal strings)."""
    return _encoder.encode(
        {
            "format": DAY_RECORD_FORMAT,
            "account_id": key.account_id,
            "app_id": key.app_id,
            "day": iso_day(key.day),
            "version": day.version,
            "calls": sum(day.calls),
            "credits": format_micro(sum(day.micro)),
            "slots": list(zip(day.order, day.calls, map(format_micro, day.micro), strict=True)),
            "source_partition": source_partition,
        }
    )


def parse_day_record(value: bytes) -> tuple[DayKey, DayUsage]:
    """Read a day record back; :class:`DayRecordError` says why one cannot be read.

    Totals are sums, so they have no upper bound (only the per-event limit does).
    """
    try:
        record = _decoder.decode(value)
        if record.format != DAY_RECORD_FORMAT:
            raise DayRecordError(f"unsupported day record format {record.format}")
        day = (date.fromisoformat(record.day) - _EPOCH_DAY).days
        slots = {}
        for slot, calls, credits in record.slots:
            if not 0 <= slot < SLOTS_PER_DAY or calls < 0:
                raise DayRecordError(f"slot {slot} out of range or negative calls")
            slots[slot] = Bucket(calls, micro_from_total(credits))
    except (msgspec.DecodeError, ValueError, CreditsError) as error:
        if isinstance(error, DayRecordError):
            raise
        raise DayRecordError(f"unreadable day record: {str(error)[:200]}") from None
    return DayKey(record.account_id, record.app_id, day), DayUsage(record.version, slots)
