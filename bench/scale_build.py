"""Building the history of the scale benchmark in the view, and measuring what it costs.

Day records are produced straight to the bucket topic, and a worker started on an empty view
rebuilds it from there (the rebuild measurement); memory is read from Redis afterwards.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import redis

from bench.load import producer as kafka_producer
from bench.namespace import Namespace, Process, creditflow
from config.topics import ensure_topics
from core.days import (
    DAY_MS,
    SLOTS_PER_DAY,
    Bucket,
    DayColumns,
    DayKey,
    DayUsage,
    day_record,
    day_record_key,
)
from view import counters
from view.connection import connect
from view.epoch import ViewEpoch
from view.keys import ViewKeys, as_text
from view.writer import ViewWriter

_TEMPLATES = 4096
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class History:
    """The shape of the generated history."""

    accounts: int = 1000
    apps: int = 10
    days: int = 400
    density: float = 0.30

    @property
    def last_day(self) -> int:
        return (datetime.now(UTC).date() - _EPOCH).days + 1

    @property
    def first_day(self) -> int:
        return self.last_day - self.days


def day_templates(history: History, rng: random.Random) -> list[DayUsage]:
    """Random days to draw from: each bucket non-empty with the density, 1-20 calls, up to 50 credits."""
    found = []
    for _ in range(_TEMPLATES):
        slots = {
            slot: Bucket(rng.randint(1, 20), rng.randint(1, 50_000_000))
            for slot in range(SLOTS_PER_DAY)
            if rng.random() < history.density
        }
        found.append(DayUsage(rng.randint(0, 10**9), slots))
    return found


async def produce(namespace: Namespace, history: History, seed: int = 7) -> dict[str, Any]:
    """Day records of the whole history into the bucket topic; counts and rate."""
    settings = namespace.settings()
    await ensure_topics(settings)
    rng = random.Random(seed)
    templates = day_templates(history, rng)
    producer = kafka_producer(
        settings, linger_ms=50, max_batch_size=1024 * 1024, max_request_size=8 * 1024 * 1024
    )
    await producer.start()
    started = time.monotonic()
    records = buckets = 0
    try:
        pending = []
        for account in range(history.accounts):
            for app in range(history.apps):
                for day in range(history.first_day, history.last_day):
                    usage = templates[rng.randrange(_TEMPLATES)]
                    key = DayKey(f"acct-{account:04d}", f"app-{app}", day)
                    pending.append(
                        await producer.send(
                            settings.buckets_topic,
                            day_record(key, usage.columns(), 0),
                            key=day_record_key(key),
                        )
                    )
                    records += 1
                    buckets += len(usage.slots)
                if len(pending) >= 20_000:
                    await asyncio.gather(*pending)
                    pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    seconds = time.monotonic() - started
    return {
        "day_records": records,
        "buckets": buckets,
        "seconds": round(seconds, 1),
        "records_per_second": round(records / seconds),
    }


def _metrics(client: redis.Redis | redis.RedisCluster, keys: ViewKeys) -> dict[str, int]:
    return {as_text(k): int(v) for k, v in client.hgetall(keys.metrics).items()}


def rebuild(namespace: Namespace, label: str, timeout: float = 3600) -> dict[str, Any]:
    """A worker on the empty view rebuilds it from the topic; its own figures, and the wall time."""
    keys = ViewKeys(namespace.env["CREDITFLOW_VIEW_PREFIX"])
    client = _sync_client(namespace)
    started = time.monotonic()
    worker = Process(creditflow("worker"), namespace, f"{label}-rebuild-worker")
    try:
        while time.monotonic() - started < timeout:
            if _metrics(client, keys).get("view_rebuilds", 0) and asyncio.run(_complete(namespace)):
                break
            time.sleep(1)
        else:
            raise RuntimeError(f"the {label} view was not rebuilt within {timeout:.0f} s")
        wall = time.monotonic() - started
        counts = _metrics(client, keys)
        lines = [line for line in worker.log.read_text().splitlines() if "view rebuil" in line]
    finally:
        worker.stop()
    seconds = counts[counters.VIEW_REBUILD_MS] / 1000
    return {
        "day_records": counts[counters.VIEW_REBUILD_RECORDS],
        "buckets": counts[counters.VIEW_REBUILD_BUCKETS],
        "unreadable": counts[counters.VIEW_REBUILD_UNREADABLE],
        "seconds": round(seconds, 1),
        "day_records_per_second": round(counts[counters.VIEW_REBUILD_RECORDS] / seconds),
        "buckets_per_second": round(counts[counters.VIEW_REBUILD_BUCKETS] / seconds),
        "wall_seconds_from_worker_start": round(wall, 1),
        "log": lines[:2] + lines[-2:],
    }


async def _complete(namespace: Namespace) -> bool:
    client = connect(namespace.env["REDIS_URL"], namespace.env.get("REDIS_CLUSTER_NODES", ""))
    try:
        return (
            await ViewEpoch(client, ViewKeys(namespace.env["CREDITFLOW_VIEW_PREFIX"])).incomplete()
            == 0
        )
    finally:
        await client.aclose()


def _sync_client(namespace: Namespace) -> redis.Redis | redis.RedisCluster:
    nodes = namespace.env.get("REDIS_CLUSTER_NODES", "")
    if nodes:
        host, _, port = nodes.split(",")[0].rpartition(":")
        return redis.RedisCluster(host=host, port=int(port))
    return redis.Redis.from_url(namespace.env["REDIS_URL"])


def _primaries(namespace: Namespace) -> list[redis.Redis]:
    nodes = namespace.env.get("REDIS_CLUSTER_NODES", "")
    if not nodes:
        return [redis.Redis.from_url(namespace.env["REDIS_URL"])]
    cluster = _sync_client(namespace)
    assert isinstance(cluster, redis.RedisCluster)
    return [redis.Redis(host=node.host, port=node.port) for node in cluster.get_primaries()]  # type: ignore[no-untyped-call]


def redis_cpu_seconds(namespace: Namespace) -> float:
    """CPU the primaries holding the view have used so far (``INFO cpu``: user and system)."""
    total = 0.0
    for node in _primaries(namespace):
        cpu = node.info("cpu")
        total += float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    return total


def used_memory(namespace: Namespace) -> int:
    """``used_memory`` summed over the primaries holding the view (replicas hold copies)."""
    return sum(int(node.info("memory")["used_memory"]) for node in _primaries(namespace))


def key_bytes(namespace: Namespace, pattern: str) -> tuple[int, int]:
    """``(MEMORY USAGE summed over the keys matching pattern, keys)`` on the primaries."""
    total = count = 0
    for node in _primaries(namespace):
        batch: list[bytes] = []
        for key in node.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) == 1000:
                total += _usage(node, batch)
                count += len(batch)
                batch = []
        total += _usage(node, batch)
        count += len(batch)
    return total, count


def _usage(node: redis.Redis, batch: list[bytes]) -> int:
    pipe = node.pipeline(transaction=False)
    for key in batch:
        pipe.memory_usage(key, samples=0)
    return sum(int(value or 0) for value in pipe.execute())


async def dense_sample(
    namespace: Namespace, accounts: int = 10, apps: int = 10, days: int = 400
) -> dict[str, Any]:
    """Bytes per dense (account, app, day): every bucket non-empty, written beside the history."""
    prefix = namespace.env["CREDITFLOW_VIEW_PREFIX"] + "-dense"
    client = connect(namespace.env["REDIS_URL"], namespace.env.get("REDIS_CLUSTER_NODES", ""))
    writer = ViewWriter(client, ViewKeys(prefix))
    rng = random.Random(3)
    last = History().last_day
    written = 0
    try:
        batch: list[tuple[DayKey, DayColumns]] = []
        for account in range(accounts):
            for app in range(apps):
                for day in range(last - days, last):
                    slots = {
                        s: Bucket(rng.randint(1, 20), rng.randint(1, 50_000_000))
                        for s in range(SLOTS_PER_DAY)
                    }
                    batch.append(
                        (
                            DayKey(f"dense-{account}", f"app-{app}", day),
                            DayUsage(day * DAY_MS, slots).columns(),
                        )
                    )
                    if len(batch) == 20_000:
                        assert await writer.write(batch)
                        written += len(batch)
                        batch = []
        assert await writer.write(batch)
        written += len(batch)
    finally:
        await client.aclose()
    total, _ = key_bytes(namespace, f"{prefix}:{{dense-*")
    return {"days": written, "bytes_per_dense_account_app_day": round(total / written)}


# ------------------------------------------------------------------ queries


def copy_view(source: Namespace, target: Namespace) -> dict[str, Any]:
    """The source's whole view, key by key (DUMP, RESTORE), under the target's prefix."""
    old = source.env["CREDITFLOW_VIEW_PREFIX"].encode()
    new = target.env["CREDITFLOW_VIEW_PREFIX"].encode()
    reader = _sync_client(source)
    writer = _sync_client(target)
    started = time.monotonic()
    copied = 0
    batch: list[bytes] = []

    def flush() -> None:
        dump = reader.pipeline(transaction=False)
        for key in batch:
            dump.dump(key)
        restore = writer.pipeline(transaction=False)
        for key, payload in zip(batch, dump.execute(), strict=True):
            restore.restore(new + key[len(old) :], 0, payload, replace=True)
        restore.execute()

    for key in reader.scan_iter(match=old + b":*", count=1000):
        batch.append(key)
        if len(batch) == 1000:
            flush()
            copied += len(batch)
            batch = []
    flush()
    copied += len(batch)
    return {"keys": copied, "seconds": round(time.monotonic() - started, 1)}
