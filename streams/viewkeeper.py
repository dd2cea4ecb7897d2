"""Keeps the Redis view whole: rebuilds it from ``usage.buckets.v1`` when Redis lost it.

The view is complete when ``cf:epoch`` exists. A fresh or wiped Redis has none; the first worker
to take the rebuild lock replays the compacted bucket topic into Redis (versioned upserts, so it
never overwrites newer live writes) and then sets a new epoch. The API answers 503 meanwhile
rather than show partial totals.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from config.settings import Settings
from core.buckets import BUCKET_MS
from core.days import DAY_MS, parse_day_record
from streams.replay import replay
from streams.topics import partitions_of
from view.keys import EPOCH, REBUILD_LOCK, alerts_key, deliveries_key
from view.writer import BucketWrite, ViewWriter

__all__ = ("ViewKeeper", "parse_bucket_value")

logger = logging.getLogger(__name__)

_LOCK_MS = 60_000


def parse_bucket_value(value: bytes) -> list[BucketWrite]:
    """SHIM(state): a day record of ``usage.buckets.v1`` as the current writer's bucket writes."""
    key, usage = parse_day_record(value)
    return [
        (
            key.account_id,
            key.app_id,
            key.day * DAY_MS + slot * BUCKET_MS,
            b.calls,
            b.micro,
            usage.version,
        )
        for slot, b in usage.slots.items()
    ]


class ViewKeeper:
    """Checks the view's epoch and rebuilds the view when it is missing."""

    def __init__(self, settings: Settings, client: aioredis.Redis, writer: ViewWriter) -> None:
        self.settings = settings
        self._redis = client
        self._writer = writer
        self._me = uuid.uuid4().hex
        self.rebuilds = 0

    async def check(self) -> None:
        """Rebuild the view if it is incomplete and no other worker is rebuilding it."""
        try:
            if self._writer.overflowed:
                await self._redis.delete(EPOCH)
            if await self._redis.exists(EPOCH):
                return
            if not await self._redis.set(REBUILD_LOCK, self._me, nx=True, px=_LOCK_MS):
                return
        except RedisError as error:
            logger.debug("view check skipped, Redis unavailable: %s", error)
            return
        try:
            self._writer.overflowed = False
            count = await self._rebuild()
            if await self._writer.flush():
                await self._redis.set(EPOCH, uuid.uuid4().hex)
                self.rebuilds += 1
                logger.info(
                    "view rebuilt from %s: %d bucket records", self.settings.buckets_topic, count
                )
        except RedisError as error:
            logger.warning("view rebuild interrupted: %s", error)
        finally:
            try:
                if await self._redis.get(REBUILD_LOCK) == self._me.encode():
                    await self._redis.delete(REBUILD_LOCK)
            except RedisError:
                pass

    async def _rebuild(self) -> int:
        """Replay buckets, alerts and delivery statuses into Redis; return the record count."""
        count = 0
        async for batch in self._replay(self.settings.buckets_topic):
            writes = [w for m in batch if m.value is not None for w in parse_bucket_value(m.value)]
            count += await self._write(writes, [])
        for topic, as_doc in (
            (self.settings.alerts_topic, _alert_doc),
            (self.settings.deliveries_topic, _delivery_doc),
        ):
            async for batch in self._replay(topic):
                count += await self._write(
                    [], [as_doc(m.value) for m in batch if m.value is not None]
                )
        return count

    def _replay(self, topic: str) -> AsyncIterator[list[Any]]:
        async def batches() -> AsyncIterator[list[Any]]:
            async for batch in replay(
                self.settings, topic, await partitions_of(self.settings, topic)
            ):
                yield batch

        return batches()

    async def _write(self, buckets: list[BucketWrite], docs: list[tuple[str, str, bytes]]) -> int:
        if not await self._writer.write(buckets, docs=docs):
            raise RedisError("view write failed during rebuild")
        await self._redis.pexpire(REBUILD_LOCK, _LOCK_MS)
        return len(buckets) + len(docs)


def _alert_doc(value: bytes) -> tuple[str, str, bytes]:
    alert = json.loads(value)
    return alerts_key(alert["account_id"]), alert["alert_id"], value


def _delivery_doc(value: bytes) -> tuple[str, str, bytes]:
    status = json.loads(value)
    field = f"{status['alert_id']}|{status['endpoint_id']}"
    return deliveries_key(status["account_id"]), field, value
