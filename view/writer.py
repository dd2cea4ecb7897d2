"""Writes the serving view: versioned bucket upserts, progress lines and counters.

Redis is derived state. When a write fails the changes are kept (coalesced per bucket, absolute
values) and retried; if Redis loses its data the view keeper rebuilds it from
``usage.buckets.v1``. Versioned writes make every path idempotent and order-independent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from importlib import resources

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.freshness import Progress
from view.keys import bucket_field

__all__ = ("BucketWrite", "ViewWriter")

logger = logging.getLogger(__name__)

BucketWrite = tuple[str, str, int, int, int, int]
"""``(account, app, bucket_ms, calls, micro, version)``."""

_UPSERT = resources.files("view").joinpath("upsert.lua").read_text()
_MAX_PENDING = 500_000
_CHUNK = 4000


class ViewWriter:
    """Applies bucket values to Redis; remembers what could not be written yet."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._upsert = client.register_script(_UPSERT)
        self._pending: dict[tuple[str, str], BucketWrite] = {}
        self._pending_metrics: dict[str, int] = {}
        self._pending_docs: dict[tuple[str, str], bytes] = {}
        self.overflowed = False

    @property
    def has_pending(self) -> bool:
        """Whether some changes still wait for Redis."""
        return bool(self._pending) or bool(self._pending_docs) or self.overflowed

    async def write(
        self,
        buckets: Iterable[BucketWrite],
        progress: Mapping[int, Progress] | None = None,
        metrics: Mapping[str, int] | None = None,
        docs: Iterable[tuple[str, str, bytes]] = (),
    ) -> bool:
        """Write buckets (and progress, counters, documents); False if Redis failed.

        ``docs`` are ``(hash key, field, JSON)`` entries such as alerts and delivery statuses;
        they are idempotent overwrites. Whatever fails stays pending for the next flush.
        """
        for bucket in buckets:
            self._remember(bucket)
        for key, name, body in docs:
            self._pending_docs[(key, name)] = body
        for name, increment in (metrics or {}).items():
            self._pending_metrics[name] = self._pending_metrics.get(name, 0) + increment
        return await self.flush(progress)

    def _remember(self, bucket: BucketWrite) -> None:
        key = (bucket[0], bucket_field(bucket[1], bucket[2]))
        known = self._pending.get(key)
        if known is None or known[5] < bucket[5]:
            self._pending[key] = bucket
        if len(self._pending) > _MAX_PENDING:
            # Too much to hold: forget it and let the keeper rebuild the view from Kafka.
            self._pending.clear()
            self.overflowed = True

    async def flush(self, progress: Mapping[int, Progress] | None = None) -> bool:
        """Try to write everything pending; progress goes only with a complete flush."""
        try:
            await self._flush_docs()
            await self._flush_buckets(progress)
        except RedisError as error:
            logger.warning(
                "view write failed, keeping %d changes pending: %s", len(self._pending), error
            )
            return False
        return True

    async def _flush_docs(self) -> None:
        if not self._pending_docs:
            return
        docs = dict(self._pending_docs)
        async with self._redis.pipeline(transaction=False) as pipe:
            for (key, name), body in docs.items():
                pipe.hset(key, name, body)
            await pipe.execute()
        for entry, body in docs.items():
            if self._pending_docs.get(entry) is body:
                del self._pending_docs[entry]

    async def _flush_buckets(self, progress: Mapping[int, Progress] | None) -> None:
        items = list(self._pending.items())
        # Taken before any await: concurrent flushes (batches, heartbeats, the deliverer) must
        # neither send the same increments twice nor drop the ones added meanwhile.
        metrics, self._pending_metrics = self._pending_metrics, {}
        try:
            for start in range(0, max(len(items), 1), _CHUNK):
                chunk = items[start : start + _CHUNK]
                last = start + _CHUNK >= len(items)
                await self._call(
                    [bucket for _, bucket in chunk],
                    progress if last and not self.overflowed else None,
                    metrics if last else None,
                )
                for entry, bucket in chunk:
                    if self._pending.get(entry) is bucket:
                        del self._pending[entry]
        except RedisError:
            for name, increment in metrics.items():
                self._pending_metrics[name] = self._pending_metrics.get(name, 0) + increment
            raise

    async def _call(
        self,
        buckets: list[BucketWrite],
        progress: Mapping[int, Progress] | None,
        metrics: Mapping[str, int] | None,
    ) -> None:
        progress = progress or {}
        metrics = metrics or {}
        args: list[str | int] = [len(buckets), len(progress), len(metrics)]
        for partition, line in progress.items():
            args += [partition, line.encode()]
        for name, increment in metrics.items():
            args += [name, increment]
        for account, app, bucket_ms, calls, micro, version in buckets:
            args += [account, bucket_field(app, bucket_ms), version, calls, micro]
        await self._upsert(args=args)
