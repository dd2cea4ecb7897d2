"""The serving view at size (``creditflow bench --scale``): years of history, many accounts.

History: ``accounts`` x ``apps`` x ``days`` (default 1,000 x 10 x 400) day values, about 30% of
their 15-minute buckets non-empty, ending today. It is built the way a wiped view is: day
records (format 2) are produced straight to the bucket topic (the worker's own path is measured
by the other phases), then a worker started on an empty view rebuilds it, which measures the
rebuild rate. Then, on one Redis and on the Redis Cluster of ``scripts/stack``:

* Redis memory per (account, app, day) and per non-empty bucket, and per dense day (96
  buckets, a sample written beside it);
* uncached queries with wrk (bench/scale_queries.lua says the rule), 50 connections, first
  back to back (the API's capacity), then as dashboards (a pause after each answer);
* a one-year daily per-app series, the same two ways;
* API RSS after every account has been queried, with the default cache.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis
from aiokafka import AIOKafkaProducer

from bench.namespace import Namespace, Process, creditflow
from core.days import DAY_MS, SLOTS_PER_DAY, Bucket, DayKey, DayUsage, day_record, day_record_key
from streams.topics import ensure_topics
from view.connection import connect
from view.epoch import ViewEpoch
from view.keys import ViewKeys, as_text
from view.writer import ViewWriter

TOKEN = "bench-admin-token"
SCRIPT = Path(__file__).with_name("scale_queries.lua")
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


def _templates(history: History, rng: random.Random) -> list[DayUsage]:
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
    templates = _templates(history, rng)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks=1,
        linger_ms=50,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
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
                            day_record(key, usage, 0),
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
    seconds = counts["view_rebuild_ms"] / 1000
    return {
        "day_records": counts["view_rebuild_records"],
        "buckets": counts["view_rebuild_buckets"],
        "unreadable": counts["view_rebuild_unreadable"],
        "seconds": round(seconds, 1),
        "day_records_per_second": round(counts["view_rebuild_records"] / seconds),
        "buckets_per_second": round(counts["view_rebuild_buckets"] / seconds),
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
        batch: list[tuple[DayKey, DayUsage]] = []
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
                            DayUsage(day * DAY_MS, slots),
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


def _wrk_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {label} in wrk output:\n{text}")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(
    port: int, history: History, mode: str, seconds: int, clients: int, think_ms: int
) -> dict[str, Any]:
    """One wrk run of scale_queries.lua; latency percentiles and rate."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    env = {
        "CF_ACCOUNTS": str(history.accounts),
        "CF_FIRST": str(history.first_day * 86_400),
        "CF_LAST": str(history.last_day * 86_400),
        "CF_MODE": mode,
        "CF_THINK_MS": str(think_ms),
        "CF_TOKEN": TOKEN,
        "PATH": "/usr/bin:/bin",
    }
    output = subprocess.run(
        [
            binary,
            "-t2",
            f"-c{clients}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(SCRIPT),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "mode": mode,
        "clients": clients,
        "think_ms": think_ms,
        "seconds": seconds,
        "requests": requests,
        "requests_per_second": round(requests / seconds),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "p50_ms": _wrk_ms(output, "50%"),
        "p90_ms": _wrk_ms(output, "90%"),
        "p99_ms": _wrk_ms(output, "99%"),
    }


def _rss(pid: int) -> dict[str, int]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            found[line.split(":")[0]] = int(line.split()[1]) * 1024
    return found


def _wait_api(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the API did not become ready")


def every_account(port: int, history: History) -> None:
    """Each account once: its whole history as a daily per-app series (in Asia/Kolkata), the
    query that reads the most of an account."""
    first = _EPOCH + timedelta(days=history.first_day)
    last = _EPOCH + timedelta(days=history.last_day - 1)
    params = {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "tz": "Asia/Kolkata",
        "window": "day",
    }
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    ) as client:
        for account in range(history.accounts):
            response = client.get(f"/v1/accounts/acct-{account:04d}/usage", params=params)
            response.raise_for_status()


def queries(
    namespace: Namespace, history: History, port: int, seconds: int, think_ms: tuple[int, int]
) -> dict[str, Any]:
    """The query runs against one API process: uncached, then with the default cache."""
    found: dict[str, Any] = {}
    uncached = Namespace(
        namespace.label,
        namespace.redis_db,
        namespace.partitions,
        {**namespace.extra, "CREDITFLOW_VIEW_CACHE_BYTES": "0"},
        namespace.tag,
    )
    for label, space in (("uncached", uncached), ("default_cache", namespace)):
        api = Process(creditflow("api", "--port", str(port)), space, f"scale-api-{label}")
        try:
            _wait_api(port)
            wrk(port, history, "random", 5, 50, 0)  # warm-up, discarded
            if label == "uncached":
                found["random_back_to_back"] = wrk(port, history, "random", seconds, 50, 0)
                found["random_dashboards"] = wrk(port, history, "random", seconds, 50, think_ms[0])
                found["year_back_to_back"] = wrk(port, history, "year", seconds, 50, 0)
                found["year_dashboards"] = wrk(port, history, "year", seconds, 50, think_ms[1])
            else:
                every_account(port, history)
                found["random_dashboards_cached"] = wrk(
                    port, history, "random", seconds, 50, think_ms[0]
                )
                every_account(port, history)
                found["api_rss_after_every_account"] = _rss(api.pid)
        finally:
            api.stop()
    return found


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


def run_scale(
    single: Namespace,
    cluster: Namespace | None,
    history: History,
    port: int,
    seconds: int,
    think_ms: tuple[int, int],
    cluster_rebuild: tuple[Namespace, History] | None = None,
) -> dict[str, Any]:
    """Every step of the phase; the result document."""
    results: dict[str, Any] = {"history": history.__dict__}
    print(
        f"      producing {history.accounts * history.apps * history.days:,} day records ...",
        flush=True,
    )
    results["produced"] = asyncio.run(produce(single, history))
    print(f"      {results['produced']}", flush=True)
    for label, namespace in (("single", single), ("cluster", cluster)):
        if namespace is None:
            continue
        before = used_memory(namespace)
        part: dict[str, Any] = {}
        if label == "single":
            print(f"      {label}: rebuilding the view from the topic ...", flush=True)
            part["rebuild"] = rebuild(namespace, label)
        else:
            print(f"      {label}: copying the single node's view, key by key ...", flush=True)
            part["copied_from_single"] = copy_view(single, namespace)
        print(f"      {label}: {part}", flush=True)
        grown = used_memory(namespace) - before
        view_bytes, keys = key_bytes(namespace, namespace.env["CREDITFLOW_VIEW_PREFIX"] + ":*")
        days = results["produced"]["day_records"]
        buckets = results["produced"]["buckets"]
        part["memory"] = {
            "used_memory_growth": grown,
            "key_bytes": view_bytes,
            "keys": keys,
            "bytes_per_account_app_day": round(view_bytes / days),
            "bytes_per_nonempty_bucket": round(view_bytes / buckets, 1),
            "used_memory_per_account_app_day": round(grown / days),
        }
        part["dense"] = asyncio.run(dense_sample(namespace))
        print(f"      {label}: {part['memory']} {part['dense']}", flush=True)
        part["queries"] = queries(namespace, history, port, seconds, think_ms)
        print(f"      {label}: {part['queries']}", flush=True)
        results[label] = part
    if cluster_rebuild is not None:
        small = History(accounts=cluster_rebuild[1].accounts)
        print(f"      cluster: rebuild rate at {small.accounts} accounts ...", flush=True)
        produced = asyncio.run(produce(cluster_rebuild[0], small, seed=8))
        results["cluster_rebuild"] = {"history": small.__dict__, "produced": produced}
        results["cluster_rebuild"]["rebuild"] = rebuild(cluster_rebuild[0], "cluster-small")
        print(f"      cluster: {results['cluster_rebuild']}", flush=True)
    return results
