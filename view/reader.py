"""Reads the serving view for the API: what one query needs, in one round trip.

A query's window edges say what to read: the day totals of the UTC months the range covers
(one row per app and month) and, for each edge inside a day, that day's usage before the edge
(one small record per edge and app, cut from the day value by the script, so a one-year daily
series moves ~365 records per app instead of 365 whole days). A Lua call returns them with the
account's completeness marker and change stamps; nothing else of the account is read or kept.
Months already held in a small cache, bounded in bytes, are sent back only when their change
stamp moved, so a dashboard polling an active account reads the current month again and not
its history; an account never read before costs the same single call.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

from core.buckets import BUCKET_MS
from core.days import DAY_MS, Bucket
from core.freshness import Freshness, Progress, freshness
from core.usage import AppDays, Edge, EdgeUsage, MonthDays, edge_parts
from view.codec import decode_day, edge_usage, month_days
from view.connection import Client, lua
from view.epoch import PENDING, ViewEpoch
from view.keys import ViewKeys, alert_of_delivery, alerts_key, as_text, deliveries_key, month_id

__all__ = ("AccountUsage", "ViewNotReady", "ViewReader", "usage_by_app")

_MONTHS_AT_ONCE = 36  # longer ranges first ask which months hold usage
_ENTRY_OVERHEAD = 120  # bytes per cached value beyond its own length (object headers)
_EDGE_OVERHEAD = 250  # bytes per cached edge record, at most: its ints, their column slots,
# its (day, slot) and an entry of the index a lookup builds
_ORDINAL_1970 = date(1970, 1, 1).toordinal()


class ViewNotReady(RuntimeError):
    """The view is empty or being rebuilt; answering now would show partial totals."""


@dataclass(frozen=True, slots=True)
class AccountUsage:
    """What a query needs of an account, how fresh it is, and which version of it."""

    apps: dict[str, AppDays]
    freshness: Freshness
    seq: int
    epoch: bytes


@dataclass(slots=True)
class _Month:
    """One account-month as last read: day totals rows and the edge records read so far."""

    epoch: bytes
    stamp: bytes
    totals: dict[str, bytes]
    edges: dict[str, EdgeUsage] = field(default_factory=dict)
    """Per app: ``(day, slot)`` -> the day's usage before the slot."""
    read: set[tuple[int, int]] = field(default_factory=set)
    size: int = 0

    def measure(self) -> int:
        self.size = sum(len(k) + len(v) + 2 * _ENTRY_OVERHEAD for k, v in self.totals.items())
        self.size += (len(self.read) + sum(map(len, self.edges.values()))) * _EDGE_OVERHEAD
        return self.size


class _MonthCache:
    """Least recently used account-months, bounded by their approximate size in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[tuple[str, int], _Month] = OrderedDict()

    def get(self, key: tuple[str, int]) -> _Month | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple[str, int], entry: _Month) -> None:
        self.drop(key)
        if not self.max_bytes or entry.measure() > self.max_bytes // 8:
            return  # one huge month must not flush everything else
        self._entries[key] = entry
        self.bytes += entry.size
        while self.bytes > self.max_bytes:
            _, oldest = self._entries.popitem(last=False)
            self.bytes -= oldest.size

    def drop(self, key: tuple[str, int]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry.size


def _day_number(month: int, day_of_month: int) -> int:
    return date(month // 12, month % 12 + 1, day_of_month).toordinal() - _ORDINAL_1970


def _month_index(text: str) -> int:
    year, month = text.split("-")
    return int(year) * 12 + int(month) - 1


class ViewReader:
    """Reads accounts' usage for queries; keeps at most ``cache_bytes`` of it."""

    def __init__(
        self,
        client: Client,
        keys: ViewKeys,
        partitions: int,
        cache_bytes: int,
        progress_max_age: float = 0.02,
    ) -> None:
        self._redis = client
        self.keys = keys
        self._read_days = client.register_script(lua("read_days"))
        self.epoch = ViewEpoch(client, keys)
        self._partitions = partitions
        self._cache = _MonthCache(cache_bytes)
        self._progress_max_age = progress_max_age
        self._progress: tuple[float, Freshness] | None = None
        self._progress_read: asyncio.Task[Freshness] | None = None

    @property
    def cached_bytes(self) -> int:
        """Approximate bytes held by the cache."""
        return self._cache.bytes

    async def freshness(self) -> Freshness:
        """``as_of`` and ``lag`` from the progress lines, read at most every few ms.

        Read before any account data: progress is written after the data it covers, so data
        read afterwards is at least as new as what the lines claim.
        """
        now = time.monotonic()
        if self._progress is not None and now - self._progress[0] <= self._progress_max_age:
            return self._progress[1]
        if self._progress_read is None or self._progress_read.done():
            self._progress_read = asyncio.ensure_future(self._read_progress(now))
        return await asyncio.shield(self._progress_read)

    async def _read_progress(self, now: float) -> Freshness:
        lines = await self._redis.hgetall(self.keys.progress)
        progress = {int(p): Progress.decode(as_text(line)) for p, line in lines.items()}
        found = freshness(progress, self._partitions)
        self._progress = (now, found)
        return found

    async def version(self, account_id: str) -> tuple[bytes, int]:
        """``(epoch, change sequence)`` of an account: it changed when either moved."""
        marker, changes, _ = await self._call(account_id, [], {})
        return marker, changes.get("#", 0)

    async def usage(self, account_id: str, edges: Sequence[int]) -> AccountUsage:
        """Per-app usage around ``edges`` (ascending, on the bucket grid) for the core's math.

        Raises :class:`ViewNotReady` while the account's part of the view is incomplete.
        """
        fresh = await self.freshness()
        parts = edge_parts(edges)
        first, last = parts[0].month, parts[-1].month
        inside: dict[int, list[Edge]] = {}  # month -> the edges inside a day, ascending
        for part in parts:
            if part.slot:
                inside.setdefault(part.month, []).append(part)
        if last - first < _MONTHS_AT_ONCE:
            months = list(range(first, last + 1))
        else:
            _, changes, _ = await self._call(account_id, [], {})
            with_usage = (_month_index(name) for name in changes.keys() - {"#"})
            months = sorted(month for month in with_usage if first <= month <= last)
        marker, changes, held = await self._call(account_id, months, inside)
        apps = usage_by_app({month: (entry.totals, entry.edges) for month, entry in held.items()})
        return AccountUsage(apps, fresh, changes.get("#", 0), marker)

    async def _call(
        self,
        account_id: str,
        months: list[int],
        inside: dict[int, list[Edge]],
        retry: bool = True,
    ) -> tuple[bytes, dict[str, int], dict[int, _Month]]:
        """One read call: the marker, the change stamps, and the months (cache refreshed)."""
        keys = [self.keys.marker_of(account_id), self.keys.changes(account_id)]
        args: list[str] = []
        held: dict[int, _Month] = {}
        asked: list[tuple[list[Edge], list[Edge]]] = []  # per month: if current, if not
        for month in months:
            keys += [
                self.keys.day_totals(account_id, month),
                self.keys.day_slots(account_id, month),
            ]
            every = inside.get(month, [])
            entry = self._cache.get((account_id, month))
            stamp, if_same, spec = "", every, _spec(every)
            if_same_spec = spec
            if entry is not None:
                held[month] = entry
                stamp = entry.stamp.decode()
                if_same = [edge for edge in every if (edge.day, edge.slot) not in entry.read]
                if_same_spec = _spec(if_same)
            args += [month_id(month), stamp, if_same_spec, spec]
            asked.append((if_same, every))
        reply = await self._read_days(keys=keys, args=args)
        marker: bytes | None = reply[0]
        if marker is None or marker.startswith(PENDING):
            for month in months:
                self._cache.drop((account_id, month))
            raise ViewNotReady("the usage view is being rebuilt from Kafka; retry shortly")
        changes = {as_text(name): int(value) for name, value in _pairs(reply[1])}
        if retry and any(entry.epoch != marker for entry in held.values()):
            # A rebuilt view restarts its stamps, so what the cache holds may look current.
            for month in held:
                self._cache.drop((account_id, month))
            return await self._call(account_id, months, inside, retry=False)
        found: dict[int, _Month] = {}
        for month, (if_same, every), (stamp, totals, records) in zip(
            months, asked, reply[2:], strict=True
        ):
            key = (account_id, month)
            if stamp is None:
                self._cache.drop(key)
                continue
            entry = held.get(month)
            read = if_same
            if totals is not None or entry is None:
                rows = {as_text(app): row for app, row in _pairs(totals or [])}
                entry = _Month(marker, stamp, rows)
                read = every
            names = tuple((edge.day, edge.slot) for edge in read)  # shared by every app
            for app, blob in _pairs(records):
                name, read_now = as_text(app), edge_usage(blob, names)
                earlier = entry.edges.get(name)
                entry.edges[name] = read_now if earlier is None else earlier.joined(read_now)
            entry.read.update(names)
            self._cache.put(key, entry)
            found[month] = entry
        return marker, changes, found

    async def buckets(self, account_id: str) -> dict[tuple[str, int], Bucket]:
        """Every bucket of an account, by ``(app, bucket start ms)`` (tools and tests)."""
        found: dict[tuple[str, int], Bucket] = {}
        for month in await self._months_with_usage(account_id):
            found.update(await self._month_buckets(account_id, month))
        return found

    async def extent(self, account_id: str) -> tuple[int, int] | None:
        """``(first bucket start, last bucket end)`` of an account's usage, None without any.

        Reads the change stamps, then the days of the first and the last month with usage.
        Raises :class:`ViewNotReady` while the account's part of the view is incomplete.
        """
        months = await self._months_with_usage(account_id)
        starts: list[int] = []
        while months and not starts:  # a stamped month without days counts for nothing
            starts = [start for _, start in await self._month_buckets(account_id, months.pop(0))]
        if not starts:
            return None
        first, last = min(starts), max(starts)
        while months:
            later = [start for _, start in await self._month_buckets(account_id, months.pop())]
            if later:
                last = max(later)
                break
        return first, last + BUCKET_MS

    async def _months_with_usage(self, account_id: str) -> list[int]:
        _, changes, _ = await self._call(account_id, [], {})
        return sorted(map(_month_index, changes.keys() - {"#"}))

    async def _month_buckets(self, account_id: str, month: int) -> dict[tuple[str, int], Bucket]:
        key = self.keys.day_slots(account_id, month)
        days = cast("dict[bytes, bytes]", await self._redis.hgetall(key))
        found: dict[tuple[str, int], Bucket] = {}
        for name, blob in days.items():
            app, _, day_of_month = name.decode().rpartition(":")
            start = _day_number(month, int(day_of_month)) * DAY_MS
            for slot, bucket in decode_day(blob).slots.items():
                found[(app, start + slot * BUCKET_MS)] = bucket
        return found

    async def alerts(self, account_id: str) -> list[dict[str, Any]]:
        """The account's fired alerts with their delivery statuses, newest crossing first."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.keys.name(alerts_key(account_id)))
            pipe.hgetall(self.keys.name(deliveries_key(account_id)))
            alerts, deliveries = await pipe.execute()
        by_alert: dict[str, list[dict[str, Any]]] = {}
        for name, body in deliveries.items():
            alert_id = alert_of_delivery(as_text(name))
            by_alert.setdefault(alert_id, []).append(json.loads(body))
        found = []
        for body in alerts.values():
            alert = json.loads(body)
            alert["deliveries"] = sorted(
                by_alert.get(alert["alert_id"], []), key=lambda d: str(d["endpoint_id"])
            )
            found.append(alert)
        return sorted(found, key=lambda a: (a["crossed_at"], a["threshold_percent"]), reverse=True)


def usage_by_app(
    months: Mapping[int, tuple[Mapping[str, bytes], Mapping[str, EdgeUsage]]],
) -> dict[str, AppDays]:
    """Per app, what the math needs of months as read: their rows (decoded here) and edges.

    ``months``: month -> (app -> month row, app -> the usage before the edges read).
    """
    by_month: dict[str, dict[int, MonthDays]] = {}
    by_edge: dict[str, dict[int, EdgeUsage]] = {}
    for month, (rows, edges) in months.items():
        for app, row in rows.items():
            by_month.setdefault(app, {})[month] = month_days(row)
        for app, found in edges.items():
            by_edge.setdefault(app, {})[month] = found
    return {app: AppDays(rows, edges=by_edge.get(app, {})) for app, rows in by_month.items()}


def _spec(edges: list[Edge]) -> str:
    """Edges for the script: ``day of month.slot``, comma-separated."""
    return ",".join(f"{edge.day_of_month}.{edge.slot}" for edge in edges)


def _pairs(flat: Iterable[Any]) -> Iterable[tuple[Any, Any]]:
    values = iter(flat)
    return zip(values, values, strict=True)
