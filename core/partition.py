"""The state of one input partition and the pure function that advances it by a batch.

Exactly-once in effect rests on three rules kept here:

* **Fence.** The state knows the last input offset it has applied; a record at or below it is a
  replay (the worker died after persisting state but before committing offsets) and is skipped.
* **Dedup.** A valid event whose ``(account_id, event_id)`` was seen within the late horizon is
  a producer retry and changes nothing.
* **Determinism.** Given the same starting state and records, the result is the same bytes: no
  wall clock, no randomness. "Now" is the broker's append time of the record (topics use
  ``LogAppendTime``), so a replay reaches the same verdicts as the first run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from core.alerts import Alert
from core.billing import Terms
from core.buckets import BUCKET_MS, bucket_start, iso_utc
from core.dedup import SeenIds
from core.events import Event, Reason, Rejection, decode_body
from core.ledger import PeriodLedger, TermsLookup

__all__ = (
    "BatchOutcome",
    "BucketKey",
    "BucketValue",
    "Limits",
    "PartitionState",
    "SourceRecord",
    "chunked",
    "time_rejection",
)

BucketKey = tuple[str, str, int]
"""``(account_id, app_id, bucket start epoch ms)``."""


class BucketValue(NamedTuple):
    """Absolute totals of a bucket and the input offset of its last change (its version)."""

    calls: int
    micro: int
    version: int


class SourceRecord(NamedTuple):
    """The parts of an input Kafka record the core needs."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    rerouted_from: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Validation limits shared by the stream and the HTTP ingest."""

    late_horizon_ms: int = 35 * 24 * 3600 * 1000
    future_tolerance_ms: int = 5 * 60 * 1000
    max_record_bytes: int = 1024 * 1024


@dataclass(slots=True)
class BatchOutcome:
    """What applying a batch did, for the shell to publish."""

    first_offset: int
    last_offset: int
    changed: dict[BucketKey, BucketValue] = field(default_factory=dict)
    new_ids: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    """Ids remembered by the batch, per account: ``event_id -> bucket start``."""
    rejected: list[tuple[SourceRecord, Rejection]] = field(default_factory=list)
    rerouted: dict[int, list[tuple[SourceRecord, Event]]] = field(default_factory=dict)
    records: int = 0
    accepted: int = 0
    duplicates: int = 0
    replayed: int = 0
    alerts: list[Alert] = field(default_factory=list)
    period_totals: list[tuple[str, int, int, int]] = field(default_factory=list)
    fired: list[tuple[str, int, int, int]] = field(default_factory=list)

    @property
    def applied_anything(self) -> bool:
        """Whether the batch moved the state's offset (it may still have changed no bucket)."""
        return self.last_offset != self.first_offset


class PartitionState:
    """Buckets, remembered ids and the fence offset of one input partition."""

    def __init__(self, partition: int, limits: Limits) -> None:
        self.partition = partition
        self.limits = limits
        self.applied = -1
        self.watermark_ms = 0
        self.buckets: dict[BucketKey, list[int]] = {}
        self.seen = SeenIds()
        self.ledger = PeriodLedger()
        self._routes: dict[str, int] = {}  # account -> partition, memoised per state

    @property
    def floor_ms(self) -> int:
        """Events before this instant are too late; buckets ending by it can no longer change."""
        return self.watermark_ms - self.limits.late_horizon_ms

    def bucket_value(self, key: BucketKey) -> BucketValue | None:
        """Current absolute totals of a bucket kept in memory."""
        cell = self.buckets.get(key)
        return None if cell is None else BucketValue(cell[0], cell[1], cell[2])

    def apply(
        self,
        records: Sequence[SourceRecord],
        partition_for: Callable[[str], int],
        terms_for: TermsLookup | None = None,
    ) -> BatchOutcome:
        """Apply records of this partition, in offset order, and report what changed.

        ``terms_for`` gives an account's contract terms (None: no contract, no alerts).
        """
        outcome = BatchOutcome(first_offset=self.applied, last_offset=self.applied)
        # key -> [cell, credits the ledger already knows]. The cells themselves, not just their
        # keys: a later record of the batch may move the floor and evict a bucket this batch
        # changed; its final value must still be reported.
        touched: dict[BucketKey, list[Any]] = {}
        for record in records:
            if record.offset <= self.applied:
                outcome.replayed += 1
                continue
            self._apply_record(record, partition_for, terms_for, outcome, touched)
            self.applied = record.offset
            outcome.records += 1
        outcome.last_offset = self.applied
        self._sync_ledger(touched)
        for key, (cell, _) in touched.items():
            outcome.changed[key] = BucketValue(cell[0], cell[1], cell[2])
        outcome.period_totals, outcome.fired = self.ledger.take_changes()
        return outcome

    def _sync_ledger(self, touched: dict[BucketKey, list[Any]]) -> None:
        """Bring the ledger's per-account index up to date with the batch so far.

        Done per bucket, not per event, which keeps the index off the per-event path; the
        ledger asks for it before it needs the index mid-batch.
        """
        for key, entry in touched.items():
            credits = entry[0][1]
            if credits != entry[1]:
                self.ledger.add_bucket_credits(key[0], key[2], credits - entry[1])
                entry[1] = credits

    def _apply_record(
        self,
        record: SourceRecord,
        partition_for: Callable[[str], int],
        terms_for: TermsLookup | None,
        outcome: BatchOutcome,
        touched: dict[BucketKey, list[Any]],
    ) -> None:
        if record.timestamp_ms > self.watermark_ms:
            previous_floor = self.floor_ms
            self.watermark_ms = record.timestamp_ms
            if self.floor_ms // BUCKET_MS != previous_floor // BUCKET_MS:
                self._evict()
        decoded = decode_body(record.value, self.limits.max_record_bytes)
        if isinstance(decoded, Rejection):
            outcome.rejected.append((record, decoded))
            return
        floor = self.floor_ms
        ceiling = self.watermark_ms + self.limits.future_tolerance_ms
        buckets = self.buckets
        routes = self._routes
        seen = self.seen
        added = duplicates = 0
        # Per-account lookups, redone only when the account changes (a batch record holds one).
        account: str | None = None
        target = 0
        ids: dict[str, int] = {}
        new_ids: list[tuple[str, int]] = []
        terms: Terms | None = None
        for item in decoded:
            if isinstance(item, Rejection):
                outcome.rejected.append((record, item))
                continue
            if item.account_id != account:
                account = item.account_id
                target = routes.get(account, -1)
                if target < 0:
                    target = routes[account] = partition_for(account)
                ids = seen.ids_of(account)
                new_ids = outcome.new_ids.setdefault(account, [])
                terms = terms_for(account) if terms_for else None
            if target != self.partition:
                outcome.rerouted.setdefault(target, []).append((record, item))
                continue
            if not floor <= item.occurred_ms <= ceiling:
                outcome.rejected.append(
                    (record, time_rejection(item, floor, ceiling, record.timestamp_ms))
                )
                continue
            start = seen.bucket(item.occurred_ms - item.occurred_ms % BUCKET_MS)
            if item.event_id in ids:
                duplicates += 1
                continue
            ids[item.event_id] = start
            added += 1
            new_ids.append((item.event_id, start))
            key = (account, item.app_id, start)
            entry = touched.get(key)
            if entry is None:
                cell = buckets.get(key)
                if cell is None:
                    cell = buckets[key] = [0, 0, 0]
                entry = touched[key] = [cell, cell[1]]
            cell = entry[0]
            cell[0] += item.calls
            cell[1] += item.micro
            cell[2] = record.offset
            if terms is not None:
                outcome.alerts += self.ledger.observe(
                    terms,
                    item.occurred_ms,
                    item.micro,
                    record.timestamp_ms,
                    item.event_id,
                    lambda: self._sync_ledger(touched),
                )
        seen.count_added(added)
        outcome.accepted += added
        outcome.duplicates += duplicates

    def _evict(self) -> None:
        """Drop buckets and ids that no future event can reach (they sit below the floor)."""
        cutoff = bucket_start(self.floor_ms)
        for key in [key for key in self.buckets if key[2] < cutoff]:
            del self.buckets[key]
        self.seen.forget_before(cutoff)
        self.ledger.evict(cutoff)

    def restore_buckets(self, values: Iterable[tuple[BucketKey, BucketValue]]) -> None:
        """Overwrite buckets with absolute values read back from the state log."""
        for key, value in values:
            previous = self.buckets.get(key)
            self.buckets[key] = [value.calls, value.micro, value.version]
            delta = value.micro - (previous[1] if previous else 0)
            self.ledger.add_bucket_credits(key[0], key[2], delta)


def chunked(records: Sequence[SourceRecord], max_bytes: int) -> Iterator[list[SourceRecord]]:
    """Consecutive runs of records whose values add up to at most ``max_bytes`` (at least one).

    A batch's state delta grows with its events (about half their size in remembered ids);
    applying a large backlog in runs keeps every delta well under the topic's record limit.
    """
    run: list[SourceRecord] = []
    size = 0
    for record in records:
        if run and size + len(record.value) > max_bytes:
            yield run
            run, size = [], 0
        run.append(record)
        size += len(record.value)
    if run:
        yield run


def time_rejection(event: Event, floor_ms: int, ceiling_ms: int, arrival_ms: int) -> Rejection:
    """The rejection of an event outside ``[floor_ms, ceiling_ms]`` (too late or too early)."""
    if event.occurred_ms < floor_ms:
        return Rejection(
            Reason.TOO_LATE,
            f"occurred_at {iso_utc(event.occurred_ms)} is older than the late horizon allows "
            f"(earliest accepted {iso_utc(floor_ms)}, arrival {iso_utc(arrival_ms)})",
            event.index,
            event.raw,
        )
    return Rejection(
        Reason.TOO_FAR_IN_FUTURE,
        f"occurred_at {iso_utc(event.occurred_ms)} is too far after arrival "
        f"(latest accepted {iso_utc(ceiling_ms)}, arrival {iso_utc(arrival_ms)})",
        event.index,
        event.raw,
    )
