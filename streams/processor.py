"""The per-run pipeline of a worker: apply, publish, commit, then publish the days it changed.

A run is a slice of one partition's records. Its steps, in an order that makes a crash at any
point harmless:

1. **Apply** the run to the partition state (pure core over the local store; records at or
   below the fence are skipped).
2. **Publish per-record outputs** (dead letters, re-routed events, alerts) and wait until Kafka
   has them: they cannot be derived from the state again, so they go before the commit. A
   crash here replays the run and republishes the same records (stable ids, dedup). Days
   still in the outbox that this commit drops past the horizon go to the bucket topic here
   too, then to the view.
3. **Publish the state-log records** (days, totals, ids, expiry tombstones, then the fence) and
   wait: from now on a restore on another machine has the run.
4. **Commit locally**: one atomic RocksDB batch with the run's state, the fence, the state-log
   offset reached and the changed days marked in the outbox. A crash between 3 and 4 is a
   store behind its state log: the next open catches up from the log.
5. **Publish the outbox** (a bounded number of days: the bucket topic, then the view), then
   unmark them. A crash in between publishes them again after the restart (absolute values,
   versioned upserts: harmless).
6. Return, and the Faust agent acknowledges the input offsets: never ahead of step 4.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import msgspec
from aiokafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
)

from config.settings import Settings
from core.days import DAY_MS, DayColumns, DayKey
from core.freshness import Progress
from core.ledger import PeriodLedger, TermsLookup
from core.partition import BatchOutcome, PartitionState, SourceRecord, chunked
from core.statecodec import (
    TAG_BYTES,
    day_columns,
    day_key,
    day_range,
    parse_day_key,
    version_of,
)
from streams.records import (
    DeadLetters,
    OutRecord,
    alert_records,
    day_records,
    dlq_records,
    reroute_records,
)
from streams.replay import replay
from streams.state.changelog import load_ledger, new_tag, prepare_commit
from streams.state.outbox import Outbox
from streams.state.restore import Restorer
from streams.state.store import PartitionStore, StoreBudget, StoreFormatError
from view import counters
from view.keys import alerts_key

__all__ = (
    "Acknowledgement",
    "Processor",
    "RecordBatch",
    "RecordProducer",
    "StateLogEntry",
    "StateLogReader",
    "ViewSink",
)

logger = logging.getLogger(__name__)

_RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0)
# A record too large for its topic (refused by the client or by the broker): its fallback, if it
# has one, is published instead; retrying the record itself can never succeed.
_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError)
# Publish errors that no retry can cure (anything else, a broker restart included, is retried).
# OutOfOrderSequenceNumber follows a batch the broker refused: the idempotent producer has then
# lost its sequence on that partition for good, and only a new producer (a restart) recovers.
_PERMANENT = (
    *_TOO_LARGE,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    OutOfOrderSequenceNumber,
)
_PROGRESS_EVERY_S = 2.0

StateLogEntry = tuple[int, bytes, bytes | None]
"""A state-log record as a restore reads it: its offset, key and value (None: a tombstone)."""

StateLogReader = Callable[[int, int], AsyncIterator[Sequence[StateLogEntry]]]
"""Reads one partition of the state log from an offset to the end seen when reading began,
in offset order, in batches: ``read(partition, start)``."""


class Acknowledgement(Protocol):
    """What an awaited send gives once Kafka has the record (aiokafka's ``RecordMetadata``)."""

    @property
    def offset(self) -> int:
        """The record's offset in its partition."""
        ...


class RecordBatch(Protocol):
    """Records gathered for one topic partition (aiokafka's ``BatchBuilder`` is one)."""

    def append(
        self,
        *,
        timestamp: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> object | None:
        """Add a record; None when the batch is full (the first record always fits).

        ``headers`` is a list: aiokafka's compiled builder refuses any other sequence.
        """
        ...


class RecordProducer(Protocol):
    """What the processor needs of a Kafka producer (aiokafka's ``AIOKafkaProducer`` is one).

    ``send`` queues a record and returns what to await for its acknowledgement; it may raise
    a ``KafkaError`` at once for a record refused before sending. ``send_batch`` queues a
    whole :class:`RecordBatch`, acknowledged with the offset of its first record.
    """

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Awaitable[Acknowledgement]:
        """Queue one record; await the result for its acknowledgement."""
        ...

    def create_batch(self) -> RecordBatch:
        """An empty batch, to fill and then hand to :meth:`send_batch`."""
        ...

    async def send_batch(
        self, batch: RecordBatch, topic: str, *, partition: int
    ) -> Awaitable[Acknowledgement]:
        """Queue a batch; await the result for its acknowledgement."""
        ...


class ViewSink(Protocol):
    """What the processor needs of the serving view (:class:`view.writer.ViewWriter` is one)."""

    @property
    def has_pending(self) -> bool:
        """Whether changes from failed writes still wait to be written."""
        ...

    async def write(
        self,
        days: Iterable[tuple[DayKey, DayColumns]],
        progress: Mapping[int, Progress] | None = None,
        metrics: Mapping[str, int] | None = None,
        docs: Iterable[tuple[str, str, bytes]] = (),
    ) -> bool:
        """Write days, then progress lines; False if the view could not be written now."""
        ...

    async def flush(self, progress: Mapping[int, Progress] | None = None) -> bool:
        """Retry what earlier writes left pending; False if the view could not be written."""
        ...


@dataclass(slots=True)
class _Owned:
    """A partition this worker owns: its state, its store, its outbox, its writer tag."""

    state: PartitionState
    store: PartitionStore
    outbox: Outbox
    tag: bytes
    retire: set[bytes] = field(default_factory=set)
    published: tuple[int, int] = (-1, 0)
    """What the view's progress line may claim: the offset at or below which everything is
    published, and the watermark there."""
    ran: bool = False
    """A run happened since the last heartbeat: the runs publish its older days."""
    fresh: bool = True
    """Loaded, and no run yet (see :meth:`Processor._run`)."""


@dataclass(slots=True)
class _Ends:
    """End offsets of the input partitions and when they were read."""

    offsets: dict[int, int] = field(default_factory=dict)
    checked_ms: int = 0


class Processor:
    """Owns the states of the partitions assigned to this worker and runs records through them.

    Its Kafka and Redis sides come in as parameters (``producer``, ``writer``, ``state_log``,
    the two readers of the view), so the commit order above is testable without a broker.
    ``state_log`` defaults to reading ``settings.state_topic`` from Kafka.
    """

    def __init__(
        self,
        settings: Settings,
        producer: RecordProducer,
        writer: ViewSink,
        partition_for: Callable[[str], int],
        read_view_progress: Callable[[int], Awaitable[Progress | None]],
        terms_for: TermsLookup | None = None,
        read_history: Callable[[str, int, int], Awaitable[int | None]] | None = None,
        state_log: StateLogReader | None = None,
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.writer = writer
        self.partition_for = partition_for
        self.terms_for = terms_for
        self._read_view_progress = read_view_progress
        self._read_history = read_history
        """Micro-credits of an account in a range, from the complete view (None: not now)."""
        self._read_state_log = state_log or _kafka_state_log(settings)
        self._budget = StoreBudget(settings.store_cache_bytes, settings.store_write_buffer_bytes)
        self._owned: dict[int, _Owned] = {}
        self._loading: dict[int, asyncio.Task[None]] = {}
        self._assigned: set[int] | None = None  # None until the first assignment arrives
        self._lock = asyncio.Lock()
        """Held while a run or an outbox flush touches stores: one writer per store."""
        self._ends = _Ends()
        self._runs_in_flight = asyncio.Semaphore(settings.runs_in_flight)
        self._letters = DeadLetters(
            settings.calls_topic, settings.dlq_topic, settings.dlq_max_record_bytes
        )

    # ------------------------------------------------------------------ ownership

    @property
    def owned(self) -> set[int]:
        """Partitions whose state is loaded or loading."""
        return set(self._owned) | set(self._loading)

    def store_path(self, partition: int) -> Path:
        """Where a partition's local store lives."""
        return self.settings.data_dir / self.settings.group_id / f"p{partition}"

    def assign(self, partitions: Iterable[int]) -> None:
        """Start loading newly assigned partitions in the background."""
        partitions = list(partitions)
        self._assigned = (self._assigned or set()) | set(partitions)
        for partition in partitions:
            if partition not in self._owned and partition not in self._loading:
                self._loading[partition] = asyncio.ensure_future(self._load(partition))

    async def revoke(self, partitions: Iterable[int]) -> None:
        """Let a run in progress finish, then close revoked partitions' stores.

        Waiting matters: the next owner must not restore before this worker's last writes.
        """
        lost = [p for p in partitions if p in self._owned or p in self._loading]
        for partition in lost:
            if self._assigned is not None:
                self._assigned.discard(partition)
            task = self._loading.pop(partition, None)
            if task is not None:
                task.cancel()
        if not lost:
            return
        async with self._lock:
            for partition in lost:
                owned = self._owned.pop(partition, None)
                if owned is not None:
                    owned.store.close()

    def _reload(self, owned: _Owned) -> None:
        """Load a partition again from its store and state log, before it runs again.

        For a seed whose commit failed: it changed the partition's state in memory (its
        total, its fired thresholds) without making it durable, and a later commit would have
        written the seeded marks without the alerts they stand for.
        """
        partition = owned.state.partition
        if self._owned.get(partition) is owned:
            del self._owned[partition]
            owned.store.close()
            self.assign([partition])

    async def close(self) -> None:
        """Close every store (shutdown)."""
        await self.revoke(list(self.owned))

    async def _load(self, partition: int) -> None:
        """Open, catch up from the state log, install if still ours; retried until it works."""
        attempt = 0
        while True:
            try:
                owned = await self._open(partition)
                break
            except (KafkaError, OSError, RuntimeError) as error:
                if isinstance(error, _PERMANENT):
                    raise  # retrying cannot help; the worker exits before acknowledging
                delay = _RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)]
                attempt += 1
                logger.warning("loading partition %d failed (%s); retrying", partition, error)
                await asyncio.sleep(delay)
        if self._loading.get(partition) is asyncio.current_task():
            del self._loading[partition]
            self._owned[partition] = owned
        else:
            owned.store.close()

    async def _open(self, partition: int) -> _Owned:
        path = self.store_path(partition)
        started = time.monotonic()
        try:
            store = PartitionStore.open(path, self._budget)
        except StoreFormatError as error:
            logger.warning("%s; restoring partition %d from the state log", error, partition)
            PartitionStore.destroy(path)
            store = PartitionStore.open(path, self._budget)
        try:
            restorer = await self._catch_up(partition, store)
            fence = restorer.fence()
            ledger = PeriodLedger()
            ledger.restore(*load_ledger(store))
            state = PartitionState(
                partition,
                self.settings.limits,
                fence.applied,
                fence.watermark_ms,
                fence.first_day,
                ledger,
            )
            outbox = Outbox(store)
            if restorer.days_to_queue:
                await self._mark_unpublished(partition, store, outbox)
        except BaseException:
            store.close()
            raise
        tag = new_tag()
        retire = restorer.other_writers()
        previous = store.take_tag(tag)
        if previous is not None:
            retire.add(previous)  # this store's own fence record of its last incarnation
        owned = _Owned(state, store, outbox, tag, retire)
        owned.published = outbox.published(state.applied, state.watermark_ms)
        logger.info(
            "partition %d ready at offset %d in %.2f s (%s)",
            partition,
            state.applied,
            time.monotonic() - started,
            "restored from the state log" if restorer.progress.records else "local store",
        )
        return owned

    async def _catch_up(self, partition: int, store: PartitionStore) -> Restorer:
        """Read the state log past the store's checkpoint to its end, with progress lines."""
        restorer = Restorer(store)
        start = restorer.log_offset + 1
        last_line = time.monotonic()
        end = start
        async for entries in self._read_state_log(partition, start):
            restorer.feed(entries)
            if entries:
                end = max(end, entries[-1][0])
            if time.monotonic() - last_line >= _PROGRESS_EVERY_S:
                last_line = time.monotonic()
                logger.info(restorer.progress.line(partition, end - start, end - start + 1))
        restorer.finish()
        if restorer.progress.records:
            logger.info(restorer.progress.line(partition, 1, 1))
        return restorer

    async def _mark_unpublished(
        self, partition: int, store: PartitionStore, outbox: Outbox
    ) -> None:
        """After a restore, queue every day the view may not have (newer than its progress)."""
        progress = await self._read_view_progress(partition)
        since, watermark = (
            (-1, 0) if progress is None else (progress.applied, progress.watermark_ms)
        )
        batch = store.batch()
        names = [name for name, raw in store.scan("days") if version_of(raw[TAG_BYTES:]) > since]
        outbox.stage_changed(batch, names, since + 1, watermark)
        Restorer.stage_queued(batch)
        store.write(batch)
        logger.info("partition %d: %d restored days queued for the view", partition, len(names))

    async def _ensure_loaded(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            if self._assigned is not None and partition not in self._assigned:
                continue  # revoked after Faust fetched it; the new owner processes these records
            if partition not in self._owned and partition not in self._loading:
                self.assign([partition])
            task = self._loading.get(partition)
            if task is not None:
                await asyncio.shield(task)

    # ------------------------------------------------------------------ runs

    async def process(self, records: Sequence[SourceRecord]) -> None:
        """Run one batch (records of any partitions, each partition in offset order)."""
        by_partition: dict[int, list[SourceRecord]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        await self._ensure_loaded(by_partition)
        async with self._lock:
            # Partitions run side by side: one's CPU work overlaps another's waits for Kafka
            # and Redis, and their records share produce requests. Each partition's runs and
            # steps keep their order, and each store still has one writer.
            await asyncio.gather(*map(self._run_partition, by_partition.items()))

    async def _run_partition(self, item: tuple[int, list[SourceRecord]]) -> None:
        partition, records = item
        for run in chunked(records, self.settings.run_max_bytes):
            # A run holds its input, decoded events and the values and state-log records of
            # every day it touches (in a backfill, thousands) until its commit is done: with
            # every partition's run alive at once, a worker's memory grew with its partition
            # count. A few in flight still overlap one's CPU work with another's waits for
            # Kafka and Redis.
            async with self._runs_in_flight:
                owned = self._owned.get(partition)
                if owned is None:
                    break  # revoked meanwhile; the new owner processes these records
                await self._run(owned, run)

    async def _run(self, owned: _Owned, records: list[SourceRecord]) -> None:
        if owned.fresh:
            # A seed lost to a crash (its alerts published, its state-log records not) is made
            # again from the state it was made from, before newer records change the total:
            # the same alert, not the same alert_id with another `used`.
            owned.fresh = False
            await self._seed(owned)
        state, store = owned.state, owned.store
        watermark_before = state.watermark_ms
        outcome = state.apply(records, store, self.partition_for, self.terms_for)
        if outcome.replayed:
            logger.info(
                "partition %d: skipped %d replayed records at or below offset %d (fenced)",
                state.partition,
                outcome.replayed,
                outcome.first_offset,
            )
        if outcome.applied_anything:
            await self._commit(owned, outcome, watermark_before)
        await self._seed(owned)

    async def _seed(self, owned: _Owned) -> None:
        """Add history older than the state to periods opened without it (then alert)."""
        if self._read_history is None:
            return
        state = owned.state
        for key, before_ms in state.ledger.unseeded():
            history = await self._read_history(key.account_id, key.start_ms, before_ms)
            if history is None:
                return  # the view is rebuilding or behind: the next heartbeat retries
            terms = self.terms_for(key.account_id) if self.terms_for else None
            outcome = state.seed(key, history, terms, state.watermark_ms)
            logger.info(
                "period %s of %s seeded with %d micro-credits of history",
                key.start_ms,
                key.account_id,
                history,
            )
            await self._commit(owned, outcome, state.watermark_ms)

    async def _commit(self, owned: _Owned, outcome: BatchOutcome, watermark_before: int) -> None:
        """Steps 2-5 of the module docstring for one outcome (a run or a seed).

        ``watermark_before`` is the state's watermark before the outcome (what a progress line
        may claim while the outcome's days wait in the outbox).
        """
        state, store, settings = owned.state, owned.store, self.settings
        outputs = dlq_records(outcome, self._letters)
        outputs += reroute_records(outcome, self._letters, settings.max_record_bytes)
        outputs += alert_records(outcome, settings.alerts_topic)
        expiring: list[tuple[DayKey, DayColumns]] = []
        if outcome.expired_before_day is not None:
            # Expiring days leave the store and its outbox with this commit: publish what
            # still waits first.
            expiring = list(self._expiring(owned, outcome).items())
            outputs += day_records(expiring, state.partition, settings.buckets_topic)
        await self._publish(outputs)
        if expiring:
            # And show them now, before the commit that forgets them: their values are final,
            # a replay writes the same versions. Refused, the writer keeps them for its next
            # flush (and no progress line is written before).
            await self.writer.write(expiring)
        commit = prepare_commit(store, state, outcome, owned.tag, owned.retire)
        offsets = await self._publish(
            [OutRecord(settings.state_topic, k, v, state.partition) for k, v in commit.records]
        )
        commit.finish(max(offsets))
        names = [day_key(key) for key in outcome.days]
        if outcome.expired_before_day is not None:
            owned.outbox.forget_before(outcome.expired_before_day)
            live_from = day_range(outcome.expired_before_day, 0)[0]
            names = [name for name in names if name >= live_from]
        owned.outbox.stage_changed(commit.batch, names, outcome.first_offset + 1, watermark_before)
        store.write(commit.batch)
        owned.retire = set()
        if outcome.expired_before_day is not None:
            await asyncio.to_thread(store.compact_expired, outcome.expired_before_day)
        owned.ran = True
        await self._flush(owned, outcome, self._cold_days(outcome.accepted))

    def _expiring(self, owned: _Owned, outcome: BatchOutcome) -> dict[DayKey, DayColumns]:
        assert outcome.expired_before_day is not None
        _, end = day_range(0, outcome.expired_before_day)
        waiting = [name for name in owned.outbox.pending if name < end]
        values = dict(self._stored_days(owned.store, waiting))
        values.update((k, day_columns(v)) for k, v in outcome.days.items() if day_key(k) < end)
        return values

    @staticmethod
    def _stored_days(store: PartitionStore, names: list[bytes]) -> list[tuple[DayKey, DayColumns]]:
        raws = store.get_many("days", names)
        return [
            (parse_day_key(name), day_columns(raw[TAG_BYTES:]))
            for name, raw in zip(names, raws, strict=True)
            if raw is not None
        ]

    def _cold_days(self, accepted: int) -> int:
        """How many older days a run of ``accepted`` events publishes.

        Each published day costs on the order of 100 us (read, bucket record, Kafka, view); a 30-day
        backfill changes a day every few events: at a fixed 1,000 per run, publishing them
        took more time than applying the events. In proportion to the run's events, the
        cost per event stays the same whatever the run size.
        """
        settings = self.settings
        return min(settings.outbox_days_per_run, 1 + accepted // settings.outbox_events_per_day)

    async def _flush(self, owned: _Owned, outcome: BatchOutcome | None, cold: int) -> None:
        """Step 5: publish the outbox's today and yesterday, up to ``cold`` older days, the view."""
        state = owned.state
        hot_from = day_range(max(0, state.watermark_ms // DAY_MS - 1), 0)[0]
        chosen = owned.outbox.select(cold, hot_from)
        # The run's own values where it has them (a backfill run changes thousands of days, so
        # look up only the chosen ones), the store's for the rest.
        fresh = outcome.days if outcome else {}
        days, stored = [], []
        for name in chosen:
            key = parse_day_key(name)
            value = fresh.get(key)
            if value is None:
                stored.append(name)
            else:
                days.append((key, day_columns(value)))
        days += self._stored_days(owned.store, stored)
        if days:
            await self._publish(day_records(days, state.partition, self.settings.buckets_topic))
        if not await self._update_view(days, outcome):
            return  # they stay in the outbox: published again (idempotent) by the next flush
        batch = owned.store.batch()
        owned.outbox.stage_published(batch, chosen)
        owned.store.write(batch)
        owned.published = owned.outbox.published(state.applied, state.watermark_ms)
        # Only now may the view's progress line claim what the flush made visible.
        await self.writer.write((), self._progress_of([owned]))

    async def _update_view(
        self, days: list[tuple[DayKey, DayColumns]], outcome: BatchOutcome | None
    ) -> bool:
        """Write days, alerts and counters to the view; False if Redis failed (retried later)."""
        docs: list[tuple[str, str, bytes]] = []
        metrics: Counter[str] = Counter()
        if outcome is not None:
            for alert in outcome.alerts:
                body = msgspec.json.encode(alert.to_wire())
                docs.append((alerts_key(alert.account_id), alert.alert_id, body))
                logger.info("alert %s fired (used %s)", alert.alert_id, alert.used_micro)
            metrics[counters.ALERTS_FIRED] += len(outcome.alerts)
            metrics[counters.EVENTS_ACCEPTED] += outcome.accepted
            metrics[counters.EVENTS_DUPLICATE] += outcome.duplicates
            metrics[counters.RECORDS_APPLIED] += outcome.records
            for _, rejection in outcome.rejected:
                metrics[counters.dlq(rejection.reason.value)] += 1
            metrics[counters.EVENTS_REROUTED] += sum(
                len(items) for items in outcome.rerouted.values()
            )
        return await self.writer.write(days, None, metrics, docs)

    def _progress_of(self, owned: Iterable[_Owned]) -> dict[int, Progress]:
        lines = {}
        for item in owned:
            partition = item.state.partition
            applied, watermark = item.published
            end = max(self._ends.offsets.get(partition, 0), applied + 1)
            lines[partition] = Progress(applied, end, watermark, self._ends.checked_ms)
        return lines

    async def _publish(self, records: list[OutRecord]) -> list[int]:
        """Produce records and wait for all acknowledgements, retrying until Kafka has them.

        Returns the offsets of the records given (in order). A record refused as too large is
        replaced by its fallback (minimal dead letters); one without a fallback, or any other
        permanent error, raises: retrying cannot help, and the worker exits before
        acknowledging (a stall would stop every partition it owns).
        """
        attempt = 0
        offsets: list[int] = []
        first = True
        while records:
            results = await self._send(records)
            if first:
                offsets = [r if isinstance(r, int) else -1 for r in results]
                first = False
            if all(isinstance(result, int) for result in results):
                return offsets
            transient: KafkaError | None = None
            every: list[OutRecord] = []  # all records again, in order, fallbacks in place
            fallbacks: list[OutRecord] = []
            for record, result in zip(records, results, strict=True):
                if isinstance(result, int):
                    every.append(record)
                elif isinstance(result, _TOO_LARGE) and record.fallback:
                    logger.error(
                        "a %d-byte record to %s was refused (%s); publishing %d minimal dead "
                        "letters instead",
                        len(record.value or b""),
                        record.topic,
                        result,
                        len(record.fallback),
                    )
                    every += record.fallback
                    fallbacks += record.fallback
                elif isinstance(result, _PERMANENT):
                    raise result
                else:
                    transient = result
                    every.append(record)
            if transient is None:
                records = fallbacks  # the rest is in Kafka
                continue
            # Resend everything, as before: records of one key must arrive in their order.
            delay = _RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)]
            attempt += 1
            logger.warning(
                "publish of %d records failed (%s); retrying in %.1fs", len(every), transient, delay
            )
            records, first = every, True
            await asyncio.sleep(delay)
        return offsets

    async def _send(self, records: list[OutRecord]) -> list[int | KafkaError]:
        """Produce every record in order, then wait for each: its offset, or its error.

        Consecutive records for one given partition without a fallback (a run's state-log
        records) go as whole batches that share their outcome: aiokafka gives every record it
        is sent a future, and on Python 3.11 making one costs a ``getpid`` system call (3.8%
        of a backfilling worker's main thread, docs/state.md). A batch skips ``send``'s
        client-side size check, so a record too large for the topic is refused by the broker
        instead (the same permanent error, one round trip later); state-log records are
        bounded well below the limit (id segments under 3 MiB, ``streams/state/changelog.py``).
        """
        pending: list[tuple[int, Awaitable[Acknowledgement] | KafkaError]] = []
        batch: RecordBatch | None = None
        place: tuple[str, int] | None = None
        count = 0

        async def submit() -> None:
            assert batch is not None and place is not None
            try:
                sent = await self.producer.send_batch(batch, place[0], partition=place[1])
            except KafkaError as error:
                pending.append((count, error))
            else:
                pending.append((count, sent))

        for r in records:
            if r.partition is not None and not r.fallback:
                target = (r.topic, r.partition)
                if batch is None or target != place or not _appended(batch, r):
                    if batch is not None:
                        await submit()
                    batch, place, count = self.producer.create_batch(), target, 0
                    appended = _appended(batch, r)
                    assert appended, "an empty batch takes any record"
                count += 1
                continue
            if batch is not None:
                await submit()
                batch, place = None, None
            try:
                pending.append(
                    (
                        1,
                        await self.producer.send(
                            r.topic, r.value, key=r.key, partition=r.partition, headers=r.headers
                        ),
                    )
                )
            except KafkaError as error:  # refused before sending (over max_request_size, ...)
                pending.append((1, error))
        if batch is not None:
            await submit()
        results: list[int | KafkaError] = []
        for size, item in pending:
            if isinstance(item, KafkaError):
                results += [item] * size
                continue
            try:
                metadata = await item
            except KafkaError as error:
                results += [error] * size
            else:
                first = int(metadata.offset)
                results += range(first, first + size)
        return results

    # ------------------------------------------------------------------ progress

    async def heartbeat(self, end_offsets: dict[int, int], checked_ms: int) -> None:
        """Publish what waits in outboxes, then report progress of owned partitions."""
        self._ends = _Ends(dict(end_offsets), checked_ms)
        async with self._lock:
            for owned in list(self._owned.values()):
                # Older days of a busy partition are left to its runs: a backfill changes
                # thousands of days a second, and republishing them on every beat as well
                # took more time than applying the events.
                if len(owned.outbox):
                    await self._flush(
                        owned, None, 0 if owned.ran else self.settings.outbox_days_per_run
                    )
                owned.ran = False
                try:
                    await self._seed(owned)
                except Exception:
                    self._reload(owned)
                    raise
        if self.writer.has_pending and not await self.writer.flush():
            return
        lines = self._progress_of(self._owned.values())
        if lines:
            await self.writer.write((), lines)


def _appended(batch: RecordBatch, record: OutRecord) -> bool:
    """Add ``record`` to ``batch``; False if the batch is full."""
    added = batch.append(timestamp=None, key=record.key, value=record.value, headers=record.headers)
    return added is not None


def _kafka_state_log(settings: Settings) -> StateLogReader:
    """The state log as Kafka holds it (``settings.state_topic``)."""

    async def read(partition: int, start: int) -> AsyncIterator[list[StateLogEntry]]:
        async for messages in replay(settings, settings.state_topic, [partition], start=start):
            yield [(m.offset, m.key or b"", m.value) for m in messages]

    return read
