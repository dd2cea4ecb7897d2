"""A broker-free shell around the real partition store: RocksDB on disk, the state log in memory.

:class:`StateLog` stands for one partition of the compacted ``creditflow.state.v1`` topic
(offsets, keys, values; :meth:`StateLog.compacted` is what log compaction leaves).
:class:`Worker` plays :class:`streams.processor.Processor` for one partition without Kafka:
open (catch up from the log past the store's checkpoint), apply a run, publish its state-log
records, write the local batch; or crash anywhere in between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.billing import Terms
from core.ledger import PeriodLedger, TermsLookup
from core.partition import BatchOutcome, Limits, PartitionState, SourceRecord
from streams.state.changelog import Commit, StateRecord, load_ledger, new_tag, prepare_commit
from streams.state.restore import Restorer
from streams.state.store import PartitionStore, StoreBudget
from tests.core.support import HOUR, MINUTE, T0, ev, local_only, rec

FAMILIES = ("ids", "days", "ledger", "outbox", "meta")
LogRecord = tuple[int, bytes, bytes | None]


def lookup(*known: Terms) -> TermsLookup:
    """A ``terms_for`` over the given terms; other accounts have no contract."""
    by_account = {t.account_id: t for t in known}
    return by_account.get


def stream(count: int, start: int = 0, every_ms: int = 3 * HOUR) -> list[SourceRecord]:
    """Records ``start..start+count-1`` from T0, ``every_ms`` apart: a batch of three events
    each, over two accounts, two apps and the day before, some of them retries."""
    out = []
    for offset in range(start, start + count):
        now = T0 + offset * every_ms
        items = [
            ev(f"e{offset}", now - 5 * MINUTE, app=f"app{offset % 2}", credits="1.5"),
            ev(f"g{offset}", now - 20 * HOUR, account="globex", credits="0.25", calls=2),
            ev(f"e{offset - 1}", now - every_ms - 5 * MINUTE, app=f"app{(offset - 1) % 2}"),
        ]
        out.append(rec(offset, now, items))
    return out


def budget() -> StoreBudget:
    """A small memory budget (what a test needs; 7 MiB of cache to recognise it in LOG)."""
    return StoreBudget(7 * 2**20, 4 * 2**20)


@dataclass
class StateLog:
    """One partition of the state-log topic: records with their offsets, in order."""

    records: list[LogRecord] = field(default_factory=list)
    next_offset: int = 0

    def append(self, records: Iterable[StateRecord]) -> list[int]:
        """Publish records; return their offsets."""
        offsets = []
        for key, value in records:
            self.records.append((self.next_offset, key, value))
            offsets.append(self.next_offset)
            self.next_offset += 1
        return offsets

    def after(self, offset: int) -> list[LogRecord]:
        """Records past ``offset`` (what a catch-up from that checkpoint reads)."""
        return [record for record in self.records if record[0] > offset]

    def compacted(self) -> StateLog:
        """What compaction leaves: the latest record of each key, offsets kept, tombstones gone."""
        latest: dict[bytes, LogRecord] = {}
        for record in self.records:
            latest[record[1]] = record
        kept = sorted(r for r in latest.values() if r[2] is not None)
        return StateLog(kept, self.next_offset)

    def live_keys(self) -> dict[bytes, bytes]:
        """Every key whose latest value is not a tombstone, with that value."""
        return {key: value for _, key, value in self.compacted().records if value is not None}


def dump(store: PartitionStore) -> dict[str, dict[bytes, bytes]]:
    """Every column family's content."""
    return {family: dict(store.scan(family)) for family in FAMILIES}


def restore(path: Path, log: StateLog | Sequence[LogRecord]) -> PartitionStore:
    """A store rebuilt at ``path`` from state-log records (a full restore)."""
    store = PartitionStore.open(path, budget())
    restorer = Restorer(store)
    restorer.feed(log.records if isinstance(log, StateLog) else log)
    restorer.finish()
    queued(restorer)
    return store


def queued(restorer: Restorer) -> None:
    """What the processor does once it has queued a restore's days for the view (its outbox
    marks are not modelled here): the store then says nothing waits to be queued."""
    if restorer.days_to_queue:
        batch = restorer.store.batch()
        Restorer.stage_queued(batch)
        restorer.store.write(batch)


class Worker:
    """One incarnation of a partition's owner: its store, its state, its writer tag."""

    def __init__(
        self,
        path: Path,
        log: StateLog,
        limits: Limits,
        *,
        partition: int = 0,
        partition_for: Callable[[str], int] = local_only,
        terms_for: TermsLookup | None = None,
        tag: bytes | None = None,
    ) -> None:
        self.log = log
        self.partition_for = partition_for
        self.terms_for = terms_for
        self.store = PartitionStore.open(path, budget())
        self.restorer = Restorer(self.store)
        self.restorer.feed(log.after(self.restorer.log_offset))
        fence = self.restorer.finish()
        queued(self.restorer)
        ledger = PeriodLedger()
        ledger.restore(*load_ledger(self.store))
        self.state = PartitionState(
            partition, limits, fence.applied, fence.watermark_ms, fence.first_day, ledger
        )
        self.tag = tag or new_tag()
        self.retire = self.restorer.other_writers()
        self.outcomes: list[BatchOutcome] = []

    def prepare(self, records: Sequence[SourceRecord]) -> tuple[BatchOutcome, Commit | None]:
        """Step 1 and the records of step 3: apply a run and prepare its commit."""
        outcome = self.state.apply(records, self.store, self.partition_for, self.terms_for)
        self.outcomes.append(outcome)
        if not outcome.applied_anything:
            return outcome, None
        return outcome, prepare_commit(self.store, self.state, outcome, self.tag, self.retire)

    def run(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        """Apply a run and commit it whole: state log first, then the local batch.

        Then, as the processor does, seed periods opened before the state's first day with
        their history from the view: nothing, in these streams (an event older than the
        first floor is refused). The seeds' alerts are reported with the run's.
        """
        outcome, commit = self.prepare(records)
        if commit is not None:
            self.commit(commit)
        for key, _ in self.state.ledger.unseeded():
            terms = self.terms_for(key.account_id) if self.terms_for else None
            seeded = self.state.seed(key, 0, terms, self.state.watermark_ms)
            self.commit(prepare_commit(self.store, self.state, seeded, self.tag, self.retire))
            outcome.alerts += seeded.alerts
        return outcome

    def commit(self, commit: Commit) -> None:
        """Steps 3 and 4: publish every state-log record, then write the local batch."""
        offsets = self.log.append(commit.records)
        commit.finish(max(offsets))
        self.store.write(commit.batch)
        self.retire = set()

    def crash(self, records: Sequence[SourceRecord], published: int) -> Commit | None:
        """Apply a run, publish only the first ``published`` of its records, die (no batch)."""
        _, commit = self.prepare(records)
        if commit is not None:
            self.log.append(commit.records[:published])
        self.close()
        return commit

    def close(self) -> None:
        """Release the store."""
        self.store.close()
