"""The state log: a run's changes as compacted Kafka records, staged with the local batch.

Each applied run becomes records keyed per day, per period total, per fired threshold and per
id segment (layout in :mod:`core.statecodec`), then a fence record. Compaction keeps the
latest value of every key and tombstones retire what the horizon drops, so the topic stays
the size of the live state without ever being rewritten whole.

**Writer tags.** Every key of a day, a period total or a fence carries the 4-byte tag of the
worker incarnation that wrote it (a fresh tag per assignment). A worker that lost a partition
but does not know it yet (a zombie) can still publish; under a shared key its older value could
replace the new owner's newer one in compaction. Under its own tag it cannot: a restore reads
every tag's value and keeps the one with the highest version (values are deterministic, so the
higher version is the more complete), and the fence is the highest any writer reached. The new
owner tombstones an older tag's key the first time it writes the same day or period.

**Order.** Fired thresholds first, then period totals, then days, then ids, the fence last: in
a log cut short by a crash, an id always comes with the count it stands for, a day count with
the period totals that count it (a total opened again from such days would count them twice
on the replay), and a total with the thresholds it crossed (its alerts went out before the
state log; a total past them without their fired marks would fire them again).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import msgspec

from core.alerts import AlertKey
from core.ledger import PeriodKey, PeriodTotal
from core.partition import BatchOutcome, PartitionState
from core.statecodec import (
    DAY_PREFIX,
    FORMAT_VERSION,
    TAG_BYTES,
    Kind,
    alert_key,
    counter_key,
    day_key,
    day_range,
    decode_total,
    encode_total,
    parse_alert_key,
    parse_counter_key,
    parse_period_key,
    period_key,
    segment_key,
)
from streams.state.store import Fence, PartitionStore, StoreBatch

__all__ = ("Commit", "StateRecord", "load_ledger", "new_tag", "prepare_commit")

StateRecord = tuple[bytes, bytes | None]
"""A state-log key and value (None: a tombstone)."""

_SEGMENT_IDS = 20_000
"""Ids per segment record: under 3 MiB at the longest ids, below the topic's record limit."""
_encode = msgspec.msgpack.encode
_int = msgspec.msgpack.Decoder(int)


def new_tag() -> bytes:
    """A fresh writer tag (one per assignment of a partition to this process)."""
    return os.urandom(TAG_BYTES)


def load_ledger(
    store: PartitionStore,
) -> tuple[list[tuple[PeriodKey, PeriodTotal]], list[tuple[AlertKey, int]]]:
    """Period totals and fired thresholds kept in the store (a few per account)."""
    totals, fired = [], []
    for key, raw in store.scan("ledger"):
        if key[:1] == Kind.TOTAL:
            totals.append((parse_period_key(key[1:]), decode_total(raw[TAG_BYTES:])))
        elif key[:1] == Kind.FIRED:
            fired.append((parse_alert_key(key[1:]), _int.decode(raw)))
    return totals, fired


@dataclass(slots=True)
class Commit:
    """One run's state-log records (in publication order) and its staged local batch."""

    records: list[StateRecord]
    batch: StoreBatch
    fence: Fence

    def finish(self, state_log_offset: int) -> None:
        """Stage the fence, now that the state log holds the run up to ``state_log_offset``."""
        PartitionStore.stage_fence(
            self.batch, self.fence._replace(state_log_offset=state_log_offset)
        )


def prepare_commit(
    store: PartitionStore,
    state: PartitionState,
    outcome: BatchOutcome,
    tag: bytes,
    retire_fences: set[bytes],
) -> Commit:
    """The records and the local batch that persist ``outcome`` (the fence staged by finish).

    ``retire_fences`` are other writers' fence tags still in the log; this commit tombstones
    them, since its own fence now supersedes them.
    """
    records: list[StateRecord] = []
    batch = store.batch()
    # A day that expires with this very commit is neither logged nor stored (the shell has
    # published its value already): a key of it written now would outlive its tombstones.
    live_from = -1 if outcome.expired_before_day is None else outcome.expired_before_day
    for alert, end in outcome.fired.items():
        name = Kind.FIRED + alert_key(alert)
        records.append((name, _encode(end)))
        batch.put("ledger", name, _encode(end))
    for period, total in outcome.totals.items():
        name = period_key(period)
        stored = store.get("ledger", Kind.TOTAL + name)
        value = encode_total(total)
        records.append((Kind.TOTAL + tag + name, value))
        if stored is not None and stored[:TAG_BYTES] != tag:
            records.append((Kind.TOTAL + stored[:TAG_BYTES] + name, None))
        batch.put("ledger", Kind.TOTAL + name, tag + value)
    changed = [(key, value) for key, value in outcome.days.items() if key.day >= live_from]
    names = [day_key(key) for key, _ in changed]
    for name, stored, (_, value) in zip(names, store.get_many("days", names), changed, strict=True):
        records.append((Kind.DAY + tag + name, value))
        if stored is not None and stored[:TAG_BYTES] != tag:
            records.append((Kind.DAY + stored[:TAG_BYTES] + name, None))
        batch.put("days", name, tag + value)
    for day, day_ids in sorted(outcome.new_ids.items()):
        if day < live_from:
            continue
        counter = counter_key(day, tag)
        stored = store.get("meta", counter)
        seq = 0 if stored is None else _int.decode(stored)
        for start in range(0, len(day_ids), _SEGMENT_IDS):
            segment = [key[DAY_PREFIX:] for key in day_ids[start : start + _SEGMENT_IDS]]
            records.append((segment_key(day, tag, seq), _encode(segment)))
            seq += 1
        batch.put("meta", counter, _encode(seq))
        batch.put_keys("ids", day_ids)
    if outcome.expired_before_day is not None:
        records += _expire_days(store, batch, outcome.expired_before_day)
    for period in outcome.expired_totals:
        name = period_key(period)
        stored = store.get("ledger", Kind.TOTAL + name)
        if stored is not None:
            records.append((Kind.TOTAL + stored[:TAG_BYTES] + name, None))
        batch.delete("ledger", Kind.TOTAL + name)
    for alert in outcome.expired_fired:
        name = Kind.FIRED + alert_key(alert)
        records.append((name, None))
        batch.delete("ledger", name)
    records += [(Kind.FENCE + other, None) for other in sorted(retire_fences)]
    fence = Fence(state.applied, state.watermark_ms, state.first_day, -1)
    body = (FORMAT_VERSION, fence.applied, fence.watermark_ms, fence.first_day)
    records.append((Kind.FENCE + tag, _encode(body)))
    return Commit(records, batch, fence)


def _expire_days(store: PartitionStore, batch: StoreBatch, before_day: int) -> list[StateRecord]:
    """Tombstones for the state-log keys of days before ``before_day``; stage their drop.

    One tombstone per (account, app) of each day and per id segment: never per id.
    """
    records: list[StateRecord] = []
    begin, end = day_range(0, before_day)
    for name, stored in store.scan("days", begin, end):
        records.append((Kind.DAY + stored[:TAG_BYTES] + name, None))
    for counter, stored in store.scan("meta", counter_key(0, b""), counter_key(before_day, b"")):
        day, tag = parse_counter_key(counter)
        records += [(segment_key(day, tag, seq), None) for seq in range(_int.decode(stored))]
    store.stage_expiry(batch, before_day)
    return records
