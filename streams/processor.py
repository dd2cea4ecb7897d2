"""The per-batch pipeline of a worker: apply, publish outputs, commit state, update the view.

Order is what makes a crash at any point harmless:

1. apply the batch to the in-memory partition state (pure core; replays are fenced off);
2. publish bucket values, dead letters and re-routed events, and wait until Kafka has them;
3. publish the partition's state delta (the commit point: fence offset + state, one record);
4. write the serving view in Redis (versioned, so late or repeated writes are harmless);
5. return, and the Faust agent acknowledges the input offsets.

A crash before 3 replays the batch and republishes identical outputs; a crash after 3 finds the
records fenced off; a crash before 4 is repaired when the partition is next loaded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
)

from config.settings import Settings
from core.days import DAY_MS, DayKey, DayUsage
from core.freshness import Progress
from core.ledger import TermsLookup
from core.partition import BatchOutcome, PartitionState, SourceRecord, chunked
from core.statelog import StateFolder, delta_record, snapshot_records
from streams.records import (
    OutRecord,
    alert_records,
    bucket_records,
    changed_days,
    dlq_records,
    reroute_records,
    state_days,
)
from streams.statestore import load_states
from view.keys import alerts_key
from view.writer import ViewWriter

__all__ = ("Processor",)

logger = logging.getLogger(__name__)

_RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0)
# Input bytes per state delta: ~4 MiB of events make a delta of ~2 MiB, far below the state
# topic's 8 MiB record limit.
_RUN_BYTES = 4 * 1024 * 1024
# Publish errors that no retry can cure (anything else, a broker restart included, is retried).
_PERMANENT = (MessageSizeTooLargeError, InvalidTopicError, TopicAuthorizationFailedError)


@dataclass(slots=True)
class _Published:
    """What the view reflects of a partition (offset and append-time watermark)."""

    applied: int = -1
    watermark_ms: int = 0


@dataclass(slots=True)
class _Ends:
    """End offsets of the input partitions and when they were read."""

    offsets: dict[int, int] = field(default_factory=dict)
    checked_ms: int = 0


class Processor:
    """Owns the states of the partitions assigned to this worker and runs batches through them."""

    def __init__(
        self,
        settings: Settings,
        producer: AIOKafkaProducer,
        writer: ViewWriter,
        partition_for: Callable[[str], int],
        read_view_applied: Callable[[int], Awaitable[int | None]],
        terms_for: TermsLookup | None = None,
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.writer = writer
        self.partition_for = partition_for
        self.terms_for = terms_for
        self._read_view_applied = read_view_applied
        self._states: dict[int, StateFolder] = {}
        self._loading: dict[int, asyncio.Task[None]] = {}
        self._assigned: set[int] | None = None  # None until the first assignment arrives
        self._published: dict[int, _Published] = {}
        # Reached by the state but not yet in Redis (a view write failed; the writer retries).
        self._unflushed: dict[int, _Published] = {}
        self._ends = _Ends()

    # ------------------------------------------------------------------ ownership

    @property
    def owned(self) -> set[int]:
        """Partitions whose state is loaded or loading."""
        return set(self._states) | set(self._loading)

    def assign(self, partitions: Iterable[int]) -> None:
        """Start loading the state of newly assigned partitions in the background."""
        partitions = list(partitions)
        self._assigned = (self._assigned or set()) | set(partitions)
        fresh = [p for p in partitions if p not in self._states and p not in self._loading]
        if fresh:
            task = asyncio.ensure_future(self._load(fresh))
            for partition in fresh:
                self._loading[partition] = task

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget revoked partitions; their next owner loads them from the state log."""
        for partition in partitions:
            if self._assigned is not None:
                self._assigned.discard(partition)
            self._states.pop(partition, None)
            self._loading.pop(partition, None)
            self._published.pop(partition, None)
            self._unflushed.pop(partition, None)

    async def _load(self, partitions: list[int]) -> None:
        """Load until it works (Kafka may be restarting); install only what is still ours.

        A partition revoked meanwhile, or reassigned to a newer load, is left alone: the check
        is repeated after every await.
        """
        me = asyncio.current_task()
        attempt = 0
        while True:
            mine = [p for p in partitions if self._loading.get(p) is me]
            if not mine:
                return
            try:
                folders = await load_states(self.settings, mine)
                break
            except KafkaError as error:
                if isinstance(error, _PERMANENT):
                    raise  # retrying cannot help; the worker exits before acknowledging
                delay = _RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)]
                attempt += 1
                logger.warning("loading partitions %s failed (%s); retrying", mine, error)
                await asyncio.sleep(delay)
        for partition, folder in folders.items():
            if self._loading.get(partition) is not me:
                continue
            await self._repair_view(folder)
            if self._loading.get(partition) is me:
                self._states[partition] = folder
                del self._loading[partition]

    async def _repair_view(self, folder: StateFolder) -> None:
        """Rewrite buckets the view may have missed (a crash between commit and view write)."""
        state = folder.state
        view_applied = await self._read_view_applied(state.partition)
        since = -1 if view_applied is None else view_applied
        if since >= state.applied:
            self._published[state.partition] = _Published(since, state.watermark_ms)
            return
        # SHIM(view): replaced by the worker's day values
        days = {
            DayKey(key[0], key[1], key[2] // DAY_MS)
            for key, cell in state.buckets.items()
            if cell[2] > since
        }
        writes = state_days(state, days)
        self._published[state.partition] = _Published(since, 0)
        done = _Published(state.applied, state.watermark_ms)
        if await self.writer.write(writes, self._progress_of({state.partition: state})):
            self._published[state.partition] = done
        else:
            self._unflushed[state.partition] = done
        logger.info("partition %d: view repaired with %d days", state.partition, len(writes))

    async def _ensure_loaded(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            if self._assigned is not None and partition not in self._assigned:
                continue  # revoked after Faust fetched it; the new owner processes these records
            if partition not in self._states and partition not in self._loading:
                self.assign([partition])
            task = self._loading.get(partition)
            if task is not None:
                await asyncio.shield(task)

    # ------------------------------------------------------------------ batches

    async def process(self, records: Sequence[SourceRecord]) -> None:
        """Run one batch (records of any partitions, each partition in offset order)."""
        by_partition: dict[int, list[SourceRecord]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        await self._ensure_loaded(by_partition)

        outputs: list[OutRecord] = []
        commits: list[OutRecord] = []
        applied: list[tuple[StateFolder, BatchOutcome, list[tuple[DayKey, DayUsage]]]] = []
        runs = (
            (partition, run)
            for partition, partition_records in by_partition.items()
            for run in chunked(partition_records, _RUN_BYTES)
        )
        for partition, run in runs:
            folder = self._states.get(partition)
            if folder is None:
                continue  # revoked meanwhile; the new owner will process these records
            outcome = folder.state.apply(run, self.partition_for, self.terms_for)
            if outcome.replayed:
                logger.info(
                    "partition %d: skipped %d replayed records at or below offset %d (fenced)",
                    partition,
                    outcome.replayed,
                    outcome.first_offset,
                )
            if not outcome.applied_anything:
                continue
            # SHIM(view): replaced by the worker's day values
            days = changed_days(outcome, folder.state)
            outputs += bucket_records(days, partition, self.settings.buckets_topic)
            outputs += dlq_records(outcome, self.settings.calls_topic, self.settings.dlq_topic)
            outputs += reroute_records(outcome, self.settings.calls_topic)
            outputs += alert_records(outcome, self.settings.alerts_topic)
            key, value = delta_record(outcome, folder.state.watermark_ms)
            commits.append(OutRecord(self.settings.state_topic, key, value, partition))
            folder.live_keys.add(key)
            folder.bytes_since_snapshot += len(value)
            applied.append((folder, outcome, days))
        if not applied:
            return
        await self._publish(outputs)
        await self._publish(commits)
        await self._update_view(applied)
        for folder, _, _ in applied:
            if folder.bytes_since_snapshot >= self.settings.snapshot_every_bytes:
                await self._snapshot(folder)

    async def _update_view(
        self, applied: list[tuple[StateFolder, BatchOutcome, list[tuple[DayKey, DayUsage]]]]
    ) -> None:
        writes: list[tuple[DayKey, DayUsage]] = []
        docs: list[tuple[str, str, bytes]] = []
        metrics: Counter[str] = Counter()
        for _, outcome, days in applied:
            for alert in outcome.alerts:
                body = msgspec.json.encode(alert.to_wire())
                docs.append((alerts_key(alert.account_id), alert.alert_id, body))
                logger.info("alert %s fired (used %s)", alert.alert_id, alert.used_micro)
            metrics["alerts_fired"] += len(outcome.alerts)
            writes += days  # SHIM(view): replaced by the worker's day values
            metrics["events_accepted"] += outcome.accepted
            metrics["events_duplicate"] += outcome.duplicates
            metrics["records_applied"] += outcome.records
            for _, rejection in outcome.rejected:
                metrics[f"dlq:{rejection.reason.value}"] += 1
            metrics["events_rerouted"] += sum(len(items) for items in outcome.rerouted.values())
        states = {folder.state.partition: folder.state for folder, _, _ in applied}
        reached = {p: _Published(s.applied, s.watermark_ms) for p, s in states.items()}
        if await self.writer.write(writes, self._progress_of(states), metrics, docs):
            self._published.update(reached)
        else:
            self._unflushed.update(reached)

    def _progress_of(self, states: dict[int, PartitionState]) -> dict[int, Progress]:
        lines = {}
        for partition, state in states.items():
            end = max(self._ends.offsets.get(partition, 0), state.applied + 1)
            lines[partition] = Progress(
                state.applied, end, state.watermark_ms, self._ends.checked_ms
            )
        return lines

    async def _publish(self, records: list[OutRecord]) -> None:
        """Produce records and wait for all acknowledgements, retrying until Kafka has them."""
        attempt = 0
        while records:
            try:
                futures = [
                    await self.producer.send(
                        r.topic, r.value, key=r.key, partition=r.partition, headers=r.headers
                    )
                    for r in records
                ]
                await asyncio.gather(*futures)
                return
            except KafkaError as error:
                delay = _RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)]
                attempt += 1
                logger.warning(
                    "publish of %d records failed (%s); retrying in %.1fs",
                    len(records),
                    error,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _snapshot(self, folder: StateFolder) -> None:
        """Write the whole state, then tombstone the records it supersedes."""
        records = snapshot_records(folder.state)
        partition = folder.state.partition
        topic = self.settings.state_topic
        await self._publish([OutRecord(topic, key, value, partition) for key, value in records])
        fresh = {key for key, _ in records}
        stale = folder.live_keys - fresh
        await self._publish([OutRecord(topic, key, None, partition) for key in sorted(stale)])
        folder.live_keys = fresh
        folder.bytes_since_snapshot = 0
        logger.info(
            "partition %d: snapshot at offset %d (%d records)",
            partition,
            folder.state.applied,
            len(records),
        )

    # ------------------------------------------------------------------ progress

    async def heartbeat(self, end_offsets: dict[int, int], checked_ms: int) -> None:
        """Report progress of owned partitions; it says how complete the view is as of now."""
        self._ends = _Ends(dict(end_offsets), checked_ms)
        if self.writer.has_pending:
            if not await self.writer.flush():
                return
            # What failed to reach Redis is there now; only then may progress claim it.
            self._published.update(
                (p, published) for p, published in self._unflushed.items() if p in self._states
            )
            self._unflushed.clear()
        lines = {
            partition: Progress(
                published.applied,
                max(end_offsets.get(partition, 0), published.applied + 1),
                published.watermark_ms,
                checked_ms,
            )
            for partition, published in self._published.items()
            if partition in self._states
        }
        if lines:
            await self.writer.write((), lines)


def now_ms() -> int:
    """Wall-clock epoch milliseconds (progress reports only; never on the money path)."""
    return time.time_ns() // 1_000_000
