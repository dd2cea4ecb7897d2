r"""Byte layout of a partition's state, shared by the local store and the state log.

Keys of ids and days start with their UTC day (4 bytes, big-endian), so a day that falls past
the late horizon is one contiguous key range: dropped whole, never found by scanning live ids.

Local store (one RocksDB database per partition, column families in ``streams/state/store``):

* ``ids``:    ``day | account_id \0 event_id`` -> nothing (account ids cannot hold ``\0``);
* ``days``:   ``day | account_id \0 app_id`` -> writer tag + day value;
* ``ledger``: ``p`` + period key -> writer tag + total; ``f`` + alert key -> period end;
* ``outbox``: day key -> first input offset not yet in the bucket topic and the view;
* ``meta``:   ``fence`` -> ``[format, applied, watermark, first day, state-log offset]``;
  ``n`` + day + tag -> id segments written; ``restore`` -> an unfinished restore.

A day value is its version (8 bytes, big-endian) then msgpack ``[slot, calls, micro, slot,
calls, micro, ...]``; a period total its version then msgpack ``[micro, unseeded before,
opened by]``. The version leads so that a restore compares versions without decoding.

The state log (compacted topic ``creditflow.state.v1``) reuses those bytes behind a one-byte
kind and the 4-byte tag of the writer (see ``streams/state/changelog.py`` for why writers are
tagged):

=====  ================================  ===============================================
kind   key after the kind byte           value (None: a tombstone)
=====  ================================  ===============================================
``d``  tag + day key                     day value
``s``  day + tag + seq (4 bytes each)    msgpack list of ``account_id \0 event_id``
``p``  tag + period key                  period total
``f``  alert key                         period end ms
``m``  tag                               ``[format, applied, watermark, first day]``
=====  ================================  ===============================================
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Final, cast

import msgspec

from core.alerts import AlertKey
from core.days import DAY_MS, Bucket, DayColumns, DayKey, DayUsage
from core.ledger import PeriodKey, PeriodTotal

if TYPE_CHECKING:
    from core.events import Event

__all__ = (
    "DAY_PREFIX",
    "FORMAT_VERSION",
    "TAG_BYTES",
    "Kind",
    "alert_key",
    "counter_key",
    "day_columns",
    "day_key",
    "day_of_key",
    "day_range",
    "decode_day",
    "decode_total",
    "encode_day",
    "encode_total",
    "id_key",
    "id_keys",
    "merge_day",
    "parse_alert_key",
    "parse_counter_key",
    "parse_day_key",
    "parse_period_key",
    "parse_segment_key",
    "period_key",
    "segment_key",
    "version_of",
)

FORMAT_VERSION: Final = 2
"""Layout version of the local store and the state log; a reader refuses any other."""

DAY_PREFIX: Final = 4
TAG_BYTES: Final = 4
_U32 = struct.Struct(">I")
_ID_KEY = b"%b%b\0%b"  # day, account, event id
_VERSION = struct.Struct(">q")
_SEGMENT = struct.Struct(">I4sI")


class Kind:
    """First byte of a state-log key (and of ledger keys in the local store)."""

    DAY: Final = b"d"
    IDS: Final = b"s"
    TOTAL: Final = b"p"
    FIRED: Final = b"f"
    FENCE: Final = b"m"


def id_key(day: int, account_id: str, event_id: str) -> bytes:
    """Key of a remembered id (the dedup key is the account, the event id and its day)."""
    return _ID_KEY % (_U32.pack(day), account_id.encode(), event_id.encode())


def id_keys(events: Iterable[Event]) -> list[bytes]:
    """:func:`id_key` of each event, on the UTC day it occurred.

    One call for a slice of a run: the worker makes a key for every event, and a call per
    key was a fifth of the key's cost.
    """
    pack = _U32.pack
    return [
        _ID_KEY % (pack(e.occurred_ms // DAY_MS), e.account_id.encode(), e.event_id.encode())
        for e in events
    ]


def day_key(key: DayKey) -> bytes:
    """Key of a day's usage."""
    return _U32.pack(key.day) + f"{key.account_id}\0{key.app_id}".encode()


def parse_day_key(raw: bytes) -> DayKey:
    """Inverse of :func:`day_key`."""
    account_id, _, app_id = raw[DAY_PREFIX:].decode().partition("\0")
    return DayKey(account_id, app_id, day_of_key(raw))


def day_of_key(raw: bytes) -> int:
    """The day of any day-first key."""
    return int(_U32.unpack_from(raw)[0])


def day_range(first_day: int, end_day: int) -> tuple[bytes, bytes]:
    """``[begin, end)`` of every day-first key of days ``first_day`` to ``end_day`` (excluded)."""
    return _U32.pack(first_day), _U32.pack(end_day)


def period_key(key: PeriodKey) -> bytes:
    """Bytes of a period key."""
    return f"{key.account_id}\0{key.start_ms}\0{key.end_ms}".encode()


def parse_period_key(raw: bytes) -> PeriodKey:
    """Inverse of :func:`period_key`."""
    account_id, start, end = raw.decode().split("\0")
    return PeriodKey(account_id, int(start), int(end))


def alert_key(key: AlertKey) -> bytes:
    """Bytes of a fired threshold's key."""
    return f"{key.account_id}\0{key.period_start_ms}\0{key.threshold}".encode()


def parse_alert_key(raw: bytes) -> AlertKey:
    """Inverse of :func:`alert_key`."""
    account_id, start, threshold = raw.decode().split("\0")
    return AlertKey(account_id, int(start), int(threshold))


def segment_key(day: int, tag: bytes, seq: int) -> bytes:
    """State-log key of the ``seq``-th id segment a writer wrote for a day."""
    return Kind.IDS + _SEGMENT.pack(day, tag, seq)


def parse_segment_key(raw: bytes) -> tuple[int, bytes, int]:
    """``(day, tag, seq)`` of an id segment key."""
    day, tag, seq = _SEGMENT.unpack_from(raw, 1)
    return int(day), bytes(tag), int(seq)


def counter_key(day: int, tag: bytes) -> bytes:
    """Local meta key counting the id segments a writer wrote for a day."""
    return b"n" + _U32.pack(day) + tag


def parse_counter_key(raw: bytes) -> tuple[int, bytes]:
    """``(day, tag)`` of a segment counter key."""
    return int(_U32.unpack_from(raw, 1)[0]), raw[1 + DAY_PREFIX :]


_encoder = msgspec.msgpack.Encoder()
_flat = msgspec.msgpack.Decoder(list[int | str])
_ints = msgspec.msgpack.Decoder(list[int])
_total = msgspec.msgpack.Decoder(tuple[int | str, int, str])


def version_of(value: bytes) -> int:
    """The version a day value or a period total starts with."""
    return int(_VERSION.unpack_from(value)[0])


def encode_day(usage: DayUsage) -> bytes:
    """A day's usage: its version, then the non-empty slots as compact msgpack."""
    return _encode_slots(usage.version, usage.slots.items())


def _encode_slots(version: int, slots: Iterable[tuple[int, Sequence[int]]]) -> bytes:
    flat: list[int | str] = []
    for slot, (calls, micro) in sorted(slots):
        flat += (slot, calls, micro)
    return _VERSION.pack(version) + _pack(flat)


def decode_day(raw: bytes) -> DayUsage:
    """Inverse of :func:`encode_day`.

    Slices, ``map`` and C-built buckets instead of a comprehension over every slot: a published
    day is decoded once per publication, and a dense day (96 slots) took 31 us as a
    comprehension, ~15 us so.
    """
    flat = _slots(raw)
    return DayUsage(
        version_of(raw),
        dict(zip(flat[::3], map(_bucket, zip(flat[1::3], flat[2::3], strict=True)), strict=True)),
    )


def day_columns(raw: bytes) -> DayColumns:
    """A stored day value as columns, for publication: slices of its flat form, no buckets."""
    flat = _slots(raw)
    return DayColumns(version_of(raw), flat[::3], flat[1::3], flat[2::3])


# Bucket(calls, micro) runs the named tuple's Python-level __new__; tuple.__new__ builds the same
# Bucket in C.
_bucket = cast("Callable[[tuple[int, int]], Bucket]", partial(tuple.__new__, Bucket))


def _slots(raw: bytes) -> list[int]:
    """The flat ``[slot, calls, micro, ...]`` of a day value, as integers."""
    try:
        return _ints.decode(raw[_VERSION.size :])
    except msgspec.ValidationError:  # a sum past 64 bits, kept as a decimal string
        return [int(value) for value in _flat.decode(raw[_VERSION.size :])]


def merge_day(stored: bytes | None, version: int, added: dict[int, list[int]]) -> bytes:
    """A stored day value with ``added`` (slot -> [calls, micro]) counted in, at ``version``.

    Works on the flat form, without building a :class:`DayUsage`, and touches only the slots
    ``added`` holds: a backfill run merges tens of thousands of days of up to 96 slots each,
    a few events into each, and a merge that rebuilt every slot in Python was a quarter of a
    backfilling worker's CPU once the days filled up (py-spy, 10M ids; docs/state.md).
    """
    if stored is None:
        return _encode_slots(version, added.items())
    known = _slots(stored)
    slots = known[::3]  # sorted: found (or placed) by bisection, no per-slot Python work
    for slot, (calls, micro) in added.items():
        i = bisect_left(slots, slot)
        if i < len(slots) and slots[i] == slot:
            known[3 * i + 1] += calls
            known[3 * i + 2] += micro
        else:
            slots.insert(i, slot)
            known[3 * i : 3 * i] = (slot, calls, micro)
    return _VERSION.pack(version) + _pack(cast(list[int | str], known))


def _pack(flat: list[int | str]) -> bytes:
    try:
        return _encoder.encode(flat)
    except OverflowError:  # a sum past 64 bits: no real bucket, but never refused
        return _encoder.encode([_wide(value) for value in flat])


def encode_total(total: PeriodTotal) -> bytes:
    """A period total: its version, then msgpack."""
    fields = (total.micro, total.unseeded_before_ms, total.opened_by)
    try:
        packed = _encoder.encode(fields)
    except OverflowError:
        packed = _encoder.encode((str(total.micro), *fields[1:]))
    return _VERSION.pack(total.version) + packed


def decode_total(raw: bytes) -> PeriodTotal:
    """Inverse of :func:`encode_total`."""
    micro, unseeded, opened_by = _total.decode(raw[_VERSION.size :])
    return PeriodTotal(int(micro), version_of(raw), unseeded, opened_by)


def _wide(value: int | str) -> int | str:
    return str(value) if isinstance(value, int) and value >= 2**63 else value
