"""Writes the serving view: versioned day values, progress lines, counters and documents.

Redis is derived state. When a write fails the changes are kept (coalesced per day, absolute
values, already encoded) and retried; if Redis loses its data the view keeper rebuilds it from
``usage.buckets.v1``. Versioned writes make every path idempotent and order-independent.

Each account's days go in one Lua call holding only that account's keys (one cluster slot);
the calls of many accounts share a non-transactional pipeline. Global keys (accounts, counters,
progress) are written afterwards by calls of their own, progress last: a progress line never
claims a day that is not in Redis yet. On a cluster a write is done only once a replica has it
(:func:`view.connection.run_commands`); the counters, whose increments a retry would repeat,
do not wait.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from redis.exceptions import RedisError

from core.days import DayColumns, DayKey
from core.freshness import Progress
from core.usage import month_day
from view.codec import ViewValueError, encode, narrow
from view.connection import REPLICA_WAIT_MS, Client, Script, run_commands, run_pipeline, script
from view.counters import VIEW_UNWRITABLE_DAYS
from view.keys import ViewKeys, month_id

__all__ = ("ViewWriter",)

logger = logging.getLogger(__name__)

_MAX_PENDING = 100_000  # days (encoded, ~0.2-1 KB each)
_DAYS_PER_CALL = 500
_DAYS_PER_PIPELINE = 20_000


class _Day(NamedTuple):
    """A day ready for Redis: its version, its buckets, its month-row entry (narrow if it fits)."""

    version: int
    value: bytes
    entry: bytes


class ViewWriter:
    """Applies day values to Redis; remembers what could not be written yet."""

    def __init__(
        self, client: Client, keys: ViewKeys, replica_wait_ms: int = REPLICA_WAIT_MS
    ) -> None:
        self._redis = client
        self.keys = keys
        self.replica_wait_ms = replica_wait_ms
        self._write_days = script(client, "write_days")
        self._progress = script(client, "progress")
        self._pending: dict[DayKey, _Day] = {}
        self._pending_metrics: dict[str, int] = {}
        self._pending_docs: dict[tuple[str, str], bytes] = {}
        self.overflowed = False

    @property
    def has_pending(self) -> bool:
        """Whether some changes still wait for Redis."""
        return bool(self._pending) or bool(self._pending_docs) or self.overflowed

    async def write(
        self,
        days: Iterable[tuple[DayKey, DayColumns]],
        progress: Mapping[int, Progress] | None = None,
        metrics: Mapping[str, int] | None = None,
        docs: Iterable[tuple[str, str, bytes]] = (),
    ) -> bool:
        """Write days (and progress, counters, documents); False if Redis failed.

        A day whose stored version is newer or equal is left alone. ``docs`` are ``(name
        below the prefix, field, JSON)`` entries such as alerts and delivery statuses
        (:func:`view.keys.alerts_key`); they are idempotent overwrites. Whatever fails stays
        pending for the next flush.
        """
        unwritable = 0
        for key, day in days:
            unwritable += not self._remember(key, day)
        self._stage_docs(docs)
        for name, increment in (metrics or {}).items():
            self._pending_metrics[name] = self._pending_metrics.get(name, 0) + increment
        if unwritable:
            self._pending_metrics[VIEW_UNWRITABLE_DAYS] = (
                self._pending_metrics.get(VIEW_UNWRITABLE_DAYS, 0) + unwritable
            )
        return await self.flush(progress)

    async def write_docs(self, docs: Iterable[tuple[str, str, bytes]] = ()) -> bool:
        """Write documents only (as :meth:`write`'s ``docs``); False if Redis failed.

        Days and counters wait for the next full flush: a document's writer (the deliverer's
        alert documents) must not wait for them, nor for a day Redis keeps refusing. What
        fails stays pending, and a call without documents retries it.
        """
        self._stage_docs(docs)
        try:
            await self._flush_docs()
        except RedisError as error:
            logger.warning("view document write failed: %s", error)
            return False
        return True

    def _stage_docs(self, docs: Iterable[tuple[str, str, bytes]]) -> None:
        for name, field, body in docs:
            self._pending_docs[(self.keys.name(name), field)] = body

    def _remember(self, key: DayKey, day: DayColumns) -> bool:
        known = self._pending.get(key)
        if known is not None and known.version >= day.version:
            return True
        try:
            value, entry = encode(day)
        except ViewValueError as error:
            logger.error("day %s left out of the view: %s", key, error)
            return False
        self._pending[key] = _Day(day.version, value, narrow(entry))
        if len(self._pending) > _MAX_PENDING:
            # Too much to hold: forget it and let the keeper rebuild the view from Kafka.
            self._pending.clear()
            self.overflowed = True
        return True

    async def flush(self, progress: Mapping[int, Progress] | None = None) -> bool:
        """Try to write everything pending; progress goes only with a complete flush."""
        try:
            await self._flush_docs()
            await self._flush_days(progress)
        except RedisError as error:
            logger.warning(
                "view write failed, keeping %d days pending: %s", len(self._pending), error
            )
            return False
        return True

    async def _flush_docs(self) -> None:
        if not self._pending_docs:
            return
        docs = dict(self._pending_docs)
        commands = [(key, ("HSET", key, name, body)) for (key, name), body in docs.items()]
        await run_commands(self._redis, commands, self.replica_wait_ms)
        for entry, body in docs.items():
            if self._pending_docs.get(entry) is body:
                del self._pending_docs[entry]

    async def _flush_days(self, progress: Mapping[int, Progress] | None) -> None:
        items = list(self._pending.items())
        # Taken before any await: concurrent flushes (batches, heartbeats, the deliverer) must
        # neither send the same increments twice nor drop the ones added meanwhile.
        metrics, self._pending_metrics = self._pending_metrics, {}
        try:
            for start in range(0, len(items), _DAYS_PER_PIPELINE):
                chunk = items[start : start + _DAYS_PER_PIPELINE]
                await run_pipeline(self._redis, self._calls(chunk), self.replica_wait_ms)
                accounts = {key.account_id for key, _ in chunk}
                add = (self.keys.accounts, ("SADD", self.keys.accounts, *accounts))
                await run_commands(self._redis, [add], self.replica_wait_ms)
                for key, day in chunk:
                    if self._pending.get(key) is day:
                        del self._pending[key]
            if metrics:
                counters = self.keys.metrics
                increments = [
                    (counters, ("HINCRBY", counters, name, increment))
                    for name, increment in metrics.items()
                ]
                await run_commands(self._redis, increments)
        except BaseException:
            # A cancelled flush too (the deliverer's, at a rebalance): the increments are the
            # processor's as well.
            for name, increment in metrics.items():
                self._pending_metrics[name] = self._pending_metrics.get(name, 0) + increment
            raise
        if progress and not self.overflowed:
            args: list[Any] = []
            for partition, line in progress.items():
                args += [partition, line.encode()]
            calls = [(self._progress, [self.keys.progress], args)]
            await run_pipeline(self._redis, calls, self.replica_wait_ms)

    def _calls(self, days: list[tuple[DayKey, _Day]]) -> list[tuple[Script, list[str], list[Any]]]:
        """One ``write_days`` call per account (and per ``_DAYS_PER_CALL`` of its days)."""
        by_account: dict[str, dict[int, list[tuple[str, int, _Day]]]] = {}
        for key, day in days:
            month, day_of_month = month_day(key.day)
            months = by_account.setdefault(key.account_id, {})
            months.setdefault(month, []).append((key.app_id, day_of_month, day))
        calls: list[tuple[Script, list[str], list[Any]]] = []
        for account, months in by_account.items():
            keys: list[str] = []
            args: list[Any] = []
            held = 0
            for month, month_days in months.items():
                for start in range(0, len(month_days), _DAYS_PER_CALL):
                    part = month_days[start : start + _DAYS_PER_CALL]
                    if held + len(part) > _DAYS_PER_CALL and keys:
                        calls.append(self._call(account, keys, args))
                        keys, args, held = [], [], 0
                    keys += [
                        self.keys.day_totals(account, month),
                        self.keys.day_slots(account, month),
                    ]
                    args += [month_id(month), len(part)]
                    for app, day_of_month, day in part:
                        args += [app, day_of_month, day.version, day.value, day.entry]
                    held += len(part)
            calls.append(self._call(account, keys, args))
        return calls

    def _call(
        self, account: str, keys: list[str], args: list[Any]
    ) -> tuple[Script, list[str], list[Any]]:
        return (
            self._write_days,
            [self.keys.changes(account), *keys],
            [len(keys) // 2, *args],
        )
