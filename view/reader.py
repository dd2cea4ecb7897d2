"""Reads the serving view for the API, keeping a per-account cache that is refreshed by delta.

Each read costs one Redis round trip (a Lua script returning the epoch, the progress lines and
only the buckets changed since the cached sequence), then prefix sums answer any range.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis.asyncio as aioredis

from core.freshness import Freshness, Progress, freshness
from core.usage import AppSeries
from view.keys import alerts_key, as_text, deliveries_key, parse_bucket_field

__all__ = ("AccountView", "ViewNotReady", "ViewReader")

_CHANGES = resources.files("view").joinpath("changes.lua").read_text()


class ViewNotReady(RuntimeError):
    """The view is empty or being rebuilt; answering now would show partial totals."""


@dataclass(slots=True)
class _Cached:
    epoch: bytes
    view: AccountView | None = None
    fetched_at: float = 0.0
    seq: int = 0
    buckets: dict[str, dict[int, tuple[int, int]]] = field(default_factory=dict)
    series: dict[str, AppSeries] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AccountView:
    """An account's per-app series and how fresh they are."""

    apps: dict[str, AppSeries]
    freshness: Freshness
    seq: int
    epoch: bytes


class ViewReader:
    """Cached, incrementally refreshed reads of accounts' buckets."""

    def __init__(self, client: aioredis.Redis, partitions: int, max_accounts: int = 10_000) -> None:
        self._redis = client
        self._changes = client.register_script(_CHANGES)
        self._partitions = partitions
        self._max_accounts = max_accounts
        self._cache: dict[str, _Cached] = {}

    async def alerts(self, account_id: str) -> list[dict[str, Any]]:
        """The account's fired alerts with their delivery statuses, newest crossing first."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(alerts_key(account_id))
            pipe.hgetall(deliveries_key(account_id))
            alerts, deliveries = await pipe.execute()
        by_alert: dict[str, list[dict[str, Any]]] = {}
        for name, body in deliveries.items():
            alert_id = as_text(name).rpartition("|")[0]
            by_alert.setdefault(alert_id, []).append(json.loads(body))
        found = []
        for body in alerts.values():
            alert = json.loads(body)
            alert["deliveries"] = sorted(
                by_alert.get(alert["alert_id"], []), key=lambda d: str(d["endpoint_id"])
            )
            found.append(alert)
        return sorted(found, key=lambda a: (a["crossed_at"], a["threshold_percent"]), reverse=True)

    async def account(self, account_id: str, max_age: float = 0.0) -> AccountView:
        """The account's current buckets; raises :class:`ViewNotReady` while rebuilding.

        ``max_age`` (seconds) lets bursts of reads share one Redis round trip; the view's
        freshness fields say exactly how current it is either way.
        """
        cached = self._cache.get(account_id)
        fresh_enough = cached is not None and time.monotonic() - cached.fetched_at <= max_age
        if cached is not None and cached.view is not None and fresh_enough:
            return cached.view
        reply = await self._changes(args=[account_id, cached.seq if cached else 0])
        epoch, top, n_progress = reply[0], int(reply[1]), int(reply[2])
        if epoch is None:
            self._cache.pop(account_id, None)
            raise ViewNotReady("the usage view is being rebuilt from Kafka; retry shortly")
        progress = {
            int(reply[3 + 2 * i]): Progress.decode(reply[4 + 2 * i].decode())
            for i in range(n_progress)
        }
        changed = reply[3 + 2 * n_progress :]
        if cached is None or cached.epoch != epoch:
            if cached is not None:
                # A new epoch means a rebuilt view: start over from sequence zero.
                self._cache.pop(account_id, None)
                return await self.account(account_id)
            cached = _Cached(epoch)
            if len(self._cache) >= self._max_accounts:
                self._cache.pop(next(iter(self._cache)))
            self._cache[account_id] = cached
        dirty: set[str] = set()
        for i in range(0, len(changed), 2):
            value = changed[i + 1]
            if not value:
                continue
            app_id, bucket_ms = parse_bucket_field(changed[i].decode())
            _, calls, micro = value.split(b":")
            cached.buckets.setdefault(app_id, {})[bucket_ms] = (int(calls), int(micro))
            dirty.add(app_id)
        for app_id in dirty:
            cached.series[app_id] = AppSeries.from_buckets(
                (start, calls, micro) for start, (calls, micro) in cached.buckets[app_id].items()
            )
        cached.seq = max(cached.seq, top)
        cached.view = AccountView(
            dict(cached.series), freshness(progress, self._partitions), cached.seq, epoch
        )
        cached.fetched_at = time.monotonic()
        return cached.view
