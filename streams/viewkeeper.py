"""Keeps the Redis view whole: rebuilds it from ``usage.buckets.v1`` when Redis lost it.

The view is complete when every cluster slot's marker is (:mod:`view.epoch`). A fresh or wiped
Redis, or one shard of a cluster that came back empty, lacks markers; the first worker to take
the rebuild lock replays the compacted bucket topic (day records) into Redis with versioned
writes, so it never overwrites newer live writes, then completes the markers. Accounts of the
incomplete slots answer 503 meanwhile rather than show partial totals.

Day totals are unbounded sums; a record that cannot be read is logged and counted
(:data:`view.counters.VIEW_REBUILD_UNREADABLE`), never a reason to stop the rebuild.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.exceptions import RedisError

from config.settings import Settings
from config.topics import partitions_of
from core.days import DayColumns, DayKey, DayRecordError, parse_day_record
from streams.replay import replay
from view import counters
from view.connection import Client
from view.epoch import ViewEpoch
from view.keys import alerts_key, deliveries_key, delivery_field
from view.writer import ViewWriter

__all__ = ("RebuildProgress", "ViewKeeper")

logger = logging.getLogger(__name__)

_LOCK_MS = 60_000
_LOGGED_UNREADABLE = 20  # unreadable records logged one by one; the rest only counted


class RebuildProgress:
    """Counts of a rebuild and its progress line: records, buckets, rates, ETA."""

    def __init__(self, expected: int, every_seconds: float) -> None:
        self.expected = expected
        self.records = self.buckets = self.unreadable = 0
        self.started = self._logged = time.monotonic()
        self._every = every_seconds

    @property
    def seconds(self) -> float:
        """Time since the rebuild started."""
        return time.monotonic() - self.started

    def line(self) -> str:
        """Where the rebuild stands."""
        seconds = max(self.seconds, 1e-9)
        rate = self.records / seconds
        left = max(0, self.expected - self.records)
        eta = f"ETA {left / rate:.0f} s" if rate and left else "ETA -"
        return (
            f"{self.records:,} of ~{self.expected:,} day records "
            f"({100 * self.records / max(self.expected, 1):.1f}%), {self.buckets:,} buckets, "
            f"{self.unreadable:,} unreadable; {rate:,.0f} records/s, "
            f"{self.buckets / seconds:,.0f} buckets/s; {eta}"
        )

    def add(self, records: int, buckets: int) -> None:
        """Count a written batch; log the progress line when it is due."""
        self.records += records
        self.buckets += buckets
        if time.monotonic() - self._logged >= self._every:
            self._logged = time.monotonic()
            logger.info("view rebuild: %s", self.line())


class ViewKeeper:
    """Checks the view's markers and rebuilds the view when some are missing."""

    def __init__(self, settings: Settings, client: Client, writer: ViewWriter) -> None:
        self.settings = settings
        self._redis = client
        self._writer = writer
        self._keys = writer.keys
        self._epoch = ViewEpoch(client, writer.keys, writer.replica_wait_ms)
        self._me = uuid.uuid4().hex
        # A full scan of the markers at start and after an unfinished rebuild; the cheap
        # sampled check (one slot per shard) otherwise.
        self._scan_all = True
        self.rebuilds = 0

    async def check(self) -> None:
        """Rebuild the view if it is incomplete and no other worker is rebuilding it."""
        try:
            if self._writer.overflowed:
                # Once: a rebuild started after this (ours or another worker's) restores the
                # dropped changes from the topic; invalidating again would undo it.
                await self._epoch.invalidate()
                self._writer.overflowed = False
            elif self._scan_all:
                if not await self._epoch.incomplete():
                    self._scan_all = False
                    return
            elif await self._epoch.complete():
                return
            lock = self._keys.rebuild_lock
            if not await self._redis.set(lock, self._me, nx=True, px=_LOCK_MS):
                return
        except RedisError as error:
            logger.debug("view check skipped, Redis unavailable: %s", error)
            return
        try:
            await self._rebuild_and_mark()
        except RedisError as error:
            self._scan_all = True
            logger.warning("view rebuild interrupted: %s", error)
        finally:
            try:
                if await self._redis.get(lock) == self._me.encode():
                    await self._redis.delete(lock)
            except RedisError:
                pass

    async def _rebuild_and_mark(self) -> None:
        self._writer.overflowed = False
        epoch = uuid.uuid4().hex
        await self._epoch.begin(epoch)
        progress = RebuildProgress(
            await self._expected(self.settings.buckets_topic),
            self.settings.view_rebuild_log_seconds,
        )
        logger.info("view rebuild started: ~%s day records", f"{progress.expected:,}")
        await self._rebuild(progress)
        counts = {
            counters.VIEW_REBUILDS: 1,
            counters.VIEW_REBUILD_RECORDS: progress.records,
            counters.VIEW_REBUILD_BUCKETS: progress.buckets,
            counters.VIEW_REBUILD_UNREADABLE: progress.unreadable,
            counters.VIEW_REBUILD_MS: round(progress.seconds * 1000),
        }
        if not await self._writer.write((), metrics=counts):
            raise RedisError("view write failed at the end of the rebuild")
        left = await self._epoch.finish(epoch)
        if left:
            self._scan_all = True
            logger.warning("view rebuild done but %d slots lost their data meanwhile", left)
            return
        self.rebuilds += 1
        logger.info("view rebuilt from %s: %s", self.settings.buckets_topic, progress.line())

    async def _expected(self, topic: str) -> int:
        """Records in the topic now (an upper bound: compaction leaves offset gaps)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in await partitions_of(self.settings, topic)]
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            return sum(ends[tp] - starts[tp] for tp in tps)
        finally:
            await consumer.stop()

    async def _rebuild(self, progress: RebuildProgress) -> None:
        """Replay day records, then alerts and delivery statuses, into Redis."""
        async for batch in self._replay(self.settings.buckets_topic):
            days: list[tuple[DayKey, DayColumns]] = []
            for message in batch:
                if message.value is None:
                    continue
                try:
                    key, usage = parse_day_record(message.value)
                except DayRecordError as error:
                    self._unreadable(progress, message, str(error))
                else:
                    days.append((key, usage.columns()))
            await self._write(days, [])
            progress.add(len(days), sum(len(day.order) for _, day in days))
        for topic, as_doc in (
            (self.settings.alerts_topic, _alert_doc),
            (self.settings.deliveries_topic, _delivery_doc),
        ):
            async for batch in self._replay(topic):
                docs = []
                for message in batch:
                    if message.value is None:
                        continue
                    try:
                        docs.append(as_doc(message.value))
                    except (ValueError, KeyError, TypeError) as error:
                        self._unreadable(progress, message, f"{type(error).__name__}: {error}")
                await self._write([], docs)

    def _unreadable(self, progress: RebuildProgress, message: Any, reason: str) -> None:
        progress.unreadable += 1
        if progress.unreadable <= _LOGGED_UNREADABLE:
            logger.error(
                "view rebuild: skipped unreadable record %s:%d:%d: %s",
                message.topic,
                message.partition,
                message.offset,
                reason[:200],
            )

    def _replay(self, topic: str) -> AsyncIterator[list[Any]]:
        async def batches() -> AsyncIterator[list[Any]]:
            async for batch in replay(
                self.settings, topic, await partitions_of(self.settings, topic)
            ):
                yield batch

        return batches()

    async def _write(
        self, days: list[tuple[DayKey, DayColumns]], docs: list[tuple[str, str, bytes]]
    ) -> None:
        if not await self._writer.write(days, docs=docs):
            raise RedisError("view write failed during rebuild")
        await self._redis.pexpire(self._keys.rebuild_lock, _LOCK_MS)


def _alert_doc(value: bytes) -> tuple[str, str, bytes]:
    alert = json.loads(value)
    return alerts_key(alert["account_id"]), alert["alert_id"], value


def _delivery_doc(value: bytes) -> tuple[str, str, bytes]:
    status = json.loads(value)
    field = delivery_field(status["alert_id"], status["endpoint_id"])
    return deliveries_key(status["account_id"]), field, value
