"""The state of one input partition and the pure function that advances it by a run of records.

Exactly-once in effect rests on four rules kept here:

* **Fence.** The state knows the last input offset it has applied; a record at or below it is a
  replay (the worker died after persisting state but before committing offsets) and is skipped.
* **Dedup.** A valid event whose ``(account_id, event_id)`` was seen on the same UTC day of
  event time within the late horizon is a producer retry and changes nothing. (A retry resends
  the event itself, so its day is the same; keying ids by day is what lets a whole day of ids
  expire at once.)
* **Versions.** Every day and period total carries the input offset of its last change. An
  event at an offset its day already covers was counted by a state log that ran ahead of the
  input commit (a crash in between): it is remembered again but not added again.
* **Determinism.** Given the same starting state and records, the result is the same: no wall
  clock, no randomness. "Now" is the broker's append time of the record (topics use
  ``LogAppendTime``), so a replay reaches the same verdicts as the first run.

The state itself (ids, days) lives in a store the core reads through
:class:`core.state.StateReader`; :meth:`PartitionState.apply` returns what changed and the shell
persists it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from core.alerts import Alert, AlertKey
from core.billing import Terms
from core.buckets import BUCKET_MS, iso_utc
from core.days import DAY_MS, DayKey, DayUsage
from core.events import Event, Reason, Rejection, decode_body
from core.ledger import PeriodKey, PeriodLedger, PeriodTotal, TermsLookup
from core.state import StateReader
from core.statecodec import decode_day, id_keys, merge_day, version_of

__all__ = (
    "BatchOutcome",
    "Limits",
    "PartitionState",
    "SourceRecord",
    "chunked",
    "time_rejection",
)


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
    """What applying a run of records (or a seed) changed, for the shell to persist and publish."""

    first_offset: int
    last_offset: int
    watermark_ms: int = 0
    days: dict[DayKey, bytes] = field(default_factory=dict)
    """Absolute values of the days the run changed, encoded (:func:`core.statecodec.encode_day`).

    Encoded, not as :class:`DayUsage` objects: a backfill run changes tens of thousands of
    dense days, 13 KB each as objects and under 1 KB each encoded.
    """
    new_ids: dict[int, list[bytes]] = field(default_factory=dict)
    """Id keys remembered by the run, by day."""
    expired_before_day: int | None = None
    """Days before this one fell past the horizon: drop them whole."""
    totals: dict[PeriodKey, PeriodTotal] = field(default_factory=dict)
    fired: dict[AlertKey, int] = field(default_factory=dict)
    expired_totals: list[PeriodKey] = field(default_factory=list)
    expired_fired: list[AlertKey] = field(default_factory=list)
    rejected: list[tuple[SourceRecord, Rejection]] = field(default_factory=list)
    rerouted: dict[int, list[tuple[SourceRecord, Event]]] = field(default_factory=dict)
    records: int = 0
    accepted: int = 0
    duplicates: int = 0
    replayed: int = 0
    alerts: list[Alert] = field(default_factory=list)

    def decoded_days(self) -> dict[DayKey, DayUsage]:
        """:attr:`days` decoded (for readers that want every value as objects)."""
        return {key: decode_day(value) for key, value in self.days.items()}

    @property
    def applied_anything(self) -> bool:
        """Whether the outcome changes the state (its fence, a day, a total)."""
        return self.last_offset != self.first_offset or bool(self.totals)


class _Cell:
    """A day during one run: its stored value (encoded) and what the run added, slot by slot."""

    __slots__ = ("added", "counted", "stored", "version")

    def __init__(self, stored: bytes | None) -> None:
        self.stored = stored
        self.counted = -1 if stored is None else version_of(stored)
        """Records up to this offset are already in the stored value."""
        self.version = self.counted
        self.added: dict[int, list[int]] = {}

    def final(self) -> bytes:
        return merge_day(self.stored, self.version, self.added)


_SLICE = 4096
_ROUTES_KEPT = 100_000
"""Accounts whose partition a state remembers (then it starts over: the lookup is a hash)."""
"""Events judged per batched store lookup: big enough to amortise a call, small in memory."""


class PartitionState:
    """The fence, watermark, first live day and period ledger of one input partition."""

    def __init__(
        self,
        partition: int,
        limits: Limits,
        applied: int = -1,
        watermark_ms: int = 0,
        first_day: int = 0,
        ledger: PeriodLedger | None = None,
    ) -> None:
        self.partition = partition
        self.limits = limits
        self.applied = applied
        self.watermark_ms = watermark_ms
        self.first_day = first_day
        """Days before this one are gone from the store (they fell past the horizon)."""
        self.ledger = ledger or PeriodLedger()
        self._routes: dict[str, int] = {}  # account -> partition, memoised per state

    @property
    def floor_ms(self) -> int:
        """Events before this instant are too late; days ending by it can no longer change."""
        return self.watermark_ms - self.limits.late_horizon_ms

    def apply(
        self,
        records: Sequence[SourceRecord],
        reader: StateReader,
        partition_for: Callable[[str], int],
        terms_for: TermsLookup | None = None,
    ) -> BatchOutcome:
        """Apply records of this partition, in offset order, against the stored state.

        ``terms_for`` gives an account's contract terms (None: no contract, no alerts).
        """
        out = BatchOutcome(self.applied, self.applied)
        run = _Run(self, reader, out, terms_for)
        work: list[tuple[SourceRecord, Event]] = []
        for record in records:
            if record.offset <= self.applied:
                out.replayed += 1
                continue
            if record.timestamp_ms > self.watermark_ms:
                self.watermark_ms = record.timestamp_ms
                if self.applied < 0 and not self.first_day:
                    # A new state holds nothing older than its first floor: whatever usage
                    # lies before it (another state's, long ago) is history to be seeded.
                    self.first_day = self.floor_ms // DAY_MS
            self._sort(record, partition_for, out, work)
            self.applied = record.offset
            out.records += 1
            if len(work) >= _SLICE:
                run.judge(work)
                work = []
        if work:
            run.judge(work)
        out.last_offset = self.applied
        out.watermark_ms = self.watermark_ms
        out.days = run.finals()
        self._expire(out)
        out.totals, out.fired = self.ledger.take_changes()
        return out

    def _sort(
        self,
        record: SourceRecord,
        partition_for: Callable[[str], int],
        out: BatchOutcome,
        work: list[tuple[SourceRecord, Event]],
    ) -> None:
        """Decode a record: reject, re-route, or queue each event for judgement."""
        decoded = decode_body(record.value, self.limits.max_record_bytes)
        if isinstance(decoded, Rejection):
            out.rejected.append((record, decoded))
            return
        floor = self.floor_ms
        ceiling = self.watermark_ms + self.limits.future_tolerance_ms
        routes = self._routes
        for item in decoded:
            if isinstance(item, Rejection):
                out.rejected.append((record, item))
                continue
            target = routes.get(item.account_id, -1)
            if target < 0:
                if len(routes) >= _ROUTES_KEPT:  # account ids come from tenants: keep a bound
                    routes.clear()
                target = routes[item.account_id] = partition_for(item.account_id)
            if target != self.partition:
                out.rerouted.setdefault(target, []).append((record, item))
            elif floor <= item.occurred_ms <= ceiling:
                work.append((record, item))
            else:
                out.rejected.append(
                    (record, time_rejection(item, floor, ceiling, record.timestamp_ms))
                )

    def _expire(self, out: BatchOutcome) -> None:
        """Drop days (and periods) that no future event can reach: they sit below the floor."""
        first_day = self.floor_ms // DAY_MS
        if first_day > self.first_day:
            self.first_day = first_day
            out.expired_before_day = first_day
            # Periods only end below the floor when it moves: new ones hold live events.
            out.expired_totals, out.expired_fired = self.ledger.expire(first_day * DAY_MS)

    def seed(
        self, key: PeriodKey, history_micro: int, terms: Terms | None, arrival_ms: int
    ) -> BatchOutcome:
        """Add a period's usage from before the state's first day (read from the view)."""
        out = BatchOutcome(self.applied, self.applied, self.watermark_ms)
        out.alerts = self.ledger.seed(terms, key, history_micro, arrival_ms)
        out.totals, out.fired = self.ledger.take_changes()
        return out


class _Run:
    """The days one :meth:`PartitionState.apply` touches, and its judgement of events."""

    def __init__(
        self,
        state: PartitionState,
        reader: StateReader,
        out: BatchOutcome,
        terms_for: TermsLookup | None,
    ) -> None:
        self.state = state
        self.reader = reader
        self.out = out
        self.terms_for = terms_for
        self.cells: dict[tuple[str, str, int], _Cell] = {}
        self.ids: set[bytes] = set()
        self._terms: dict[str, Terms | None] = {}
        self.opened: set[PeriodKey] = set()
        """Periods this run opened from the stored days."""

    def judge(self, work: list[tuple[SourceRecord, Event]]) -> None:
        """Dedup and count queued events, in order, with one batched read of ids and days."""
        keys = id_keys([event for _, event in work])
        places = self._load_days(work)
        seen = self.reader.seen(keys)
        run_ids = self.ids
        cells = self.cells
        out = self.out
        new_ids = out.new_ids
        terms_of = self._terms
        counting_periods = self.terms_for is not None
        accepted = duplicates = 0
        for (record, event), key, place, stored in zip(work, keys, places, seen, strict=True):
            if stored is not None or key in run_ids:
                duplicates += 1
                continue
            run_ids.add(key)
            day = place[2]
            ids = new_ids.get(day)
            if ids is None:
                ids = new_ids[day] = []
            ids.append(key)
            accepted += 1
            cell = cells[place]
            in_day = cell.counted >= record.offset
            if not in_day:
                slot = event.occurred_ms % DAY_MS // BUCKET_MS
                added = cell.added.get(slot)
                if added is None:
                    cell.added[slot] = [event.calls, event.micro]
                else:
                    added[0] += event.calls
                    added[1] += event.micro
                cell.version = record.offset
            if counting_periods:
                account = event.account_id
                terms = terms_of[account] if account in terms_of else self._ask_terms(account)
                if terms is not None:
                    self._count_period(terms, record, event, in_day)
        out.accepted += accepted
        out.duplicates += duplicates

    def _load_days(self, work: list[tuple[SourceRecord, Event]]) -> list[tuple[str, str, int]]:
        """Read the days ``work`` touches that the run has not read yet.

        Returns each event's ``(account, app, day)``, in order: the key of its cell.
        """
        places = [
            (event.account_id, event.app_id, event.occurred_ms // DAY_MS) for _, event in work
        ]
        cells = self.cells
        missing = {place for place in places if place not in cells}
        if missing:
            wanted = [DayKey(*key) for key in missing]
            for key, stored in zip(wanted, self.reader.day_values(wanted), strict=True):
                cells[(key.account_id, key.app_id, key.day)] = _Cell(stored)
        return places

    def _ask_terms(self, account_id: str) -> Terms | None:
        """Ask ``terms_for`` for an account's terms and keep them for the rest of the run."""
        assert self.terms_for is not None
        terms = self._terms[account_id] = self.terms_for(account_id)
        return terms

    def _count_period(self, terms: Terms, record: SourceRecord, event: Event, in_day: bool) -> None:
        """Count an accepted event toward its period (``in_day``: its stored day has it)."""
        ledger = self.state.ledger
        period = ledger.period(terms, event.occurred_ms)
        if period is None:
            return
        key = PeriodKey(terms.account_id, period.start_ms, period.end_ms)
        if key in self.opened and in_day:
            return  # opened by this run from the stored days, which hold this event already
        if key in ledger.totals:
            self.out.alerts += ledger.add(
                terms,
                period,
                key,
                event.micro,
                record.offset,
                record.timestamp_ms,
                event.event_id,
            )
            return
        # First sight of the period: count what the state holds of it, this event included.
        held_from = max(key.start_ms, self.state.first_day * DAY_MS)
        total = PeriodTotal(
            self.reader.account_micro(key.account_id, held_from, key.end_ms)
            + self._added_micro(key.account_id, held_from, key.end_ms),
            record.offset,
            held_from,
            event.event_id,
        )
        self.opened.add(key)
        self.out.alerts += ledger.open(terms, period, key, total, record.timestamp_ms)

    def _added_micro(self, account_id: str, start_ms: int, end_ms: int) -> int:
        """Micro-credits this run added to the account's buckets in ``[start_ms, end_ms)``."""
        total = 0
        for (account, _, day), cell in self.cells.items():
            if account != account_id:
                continue
            base = day * DAY_MS
            total += sum(
                micro
                for slot, (_, micro) in cell.added.items()
                if start_ms <= base + slot * BUCKET_MS < end_ms
            )
        return total

    def finals(self) -> dict[DayKey, bytes]:
        """The new absolute value of every day the run changed."""
        return {DayKey(*key): cell.final() for key, cell in self.cells.items() if cell.added}


def chunked(records: Sequence[SourceRecord], max_bytes: int) -> Iterator[list[SourceRecord]]:
    """Consecutive runs of records whose values add up to at most ``max_bytes`` (at least one).

    A run's memory (the days it touches, the ids it remembers) grows with its events; bounding
    runs keeps it flat however large the fetched backlog.
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
