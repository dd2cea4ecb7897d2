"""Worker state at scale (issue 10): tens of millions of remembered ids on one worker.

How the state is built: through the real pipeline. ``ids`` unique events of 200 accounts x 8
apps, event times spread over the last 30 days (a backfill), in batch records of 500, are
produced into a fresh 8-partition input topic; one worker applies them all (the rate of that
is the backfill figure at growing state). Then, with every id remembered:

* current-time events (2 minutes of spread) and a second 30-day backfill, their rates;
* worker RSS at 1M ids and at the end, and its peak;
* disk bytes per id of the local stores;
* restart after kill -9 until a new event is visible in the usage API;
* restore of every partition on a worker with no local store, ids/s from its progress lines;
* dropping one day of ids past the horizon, timed on stores of 1M and of ``ids`` live ids
  holding the same day (it must not depend on the live ids).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.load import producer as kafka_producer
from bench.load import send_all
from bench.namespace import RESULTS, Namespace, Process, creditflow, free_port
from config.topics import ensure_topics
from core.days import DAY_MS
from core.partition import BatchOutcome, Limits, PartitionState
from core.statecodec import id_key
from streams.state.changelog import new_tag, prepare_commit
from streams.state.store import PartitionStore, StoreBudget
from view import counters

TOKEN = "bench-admin-token"
APPS = tuple(f"app-{i}" for i in range(8))


@dataclass(frozen=True)
class ScaleSizes:
    """How large the state gets."""

    ids: int = 20_000_000
    accounts: int = 200
    batch: int = 500
    extra_events: int = 2_000_000


def _records(count: int, batch: int, accounts: int, spread_s: int, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    now = datetime.now(UTC) - timedelta(seconds=30)
    for n in range(count // batch):
        account = f"scale-{n % accounts:03d}"
        items = []
        for _ in range(batch):
            occurred = now - timedelta(milliseconds=rng.randrange(spread_s * 1000))
            items.append(
                '{"event_id":"%032x","account_id":"%s","app_id":"%s","occurred_at":"%s",'
                '"credits":"%d.%03d"}'
                % (
                    rng.getrandbits(128),
                    account,
                    APPS[rng.randrange(len(APPS))],
                    occurred.isoformat(timespec="milliseconds"),
                    rng.randrange(20),
                    rng.randrange(1000),
                )
            )
        yield ("[" + ",".join(items) + "]").encode()


async def produce(
    namespace: Namespace, count: int, sizes: ScaleSizes, spread_s: int, seed: int
) -> float:
    """Produce ``count`` events, event times spread over ``spread_s`` before now; seconds taken."""
    settings = namespace.settings()
    await ensure_topics(settings)
    producer = kafka_producer(settings, linger_ms=50, max_batch_size=1024 * 1024)
    await producer.start()
    started = time.monotonic()
    values = _records(count, sizes.batch, sizes.accounts, spread_s, seed)
    keyed = ((f"scale-{n % sizes.accounts:03d}".encode(), v) for n, v in enumerate(values))
    try:
        await send_all(producer, settings.calls_topic, keyed, 2000)
    finally:
        await producer.stop()
    return time.monotonic() - started


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class _Worker:
    """A worker process and the counters it reports through Redis."""

    def __init__(self, namespace: Namespace, name: str) -> None:
        self.process = Process(creditflow("worker"), namespace, name)
        self.redis = redis.Redis.from_url(namespace.env["REDIS_URL"])

    def accepted(self) -> int:
        return int(self.redis.hget("cf:metrics", counters.EVENTS_ACCEPTED) or 0)

    def wait_started(self, base: int, timeout: float) -> None:
        """Return once the worker has applied past ``base`` (its first batch of a backlog)."""
        deadline = time.monotonic() + timeout
        while self.accepted() <= base:
            if self.process.proc.poll() is not None:
                raise RuntimeError(f"the worker exited: {self.process.last_line()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker applied nothing; see {self.process.log}")
            time.sleep(0.02)

    def apply_until(
        self, target: int, timeout: float, samples: list[tuple[float, int, int]]
    ) -> tuple[int, float]:
        """Sample (time, accepted, rss) until ``target`` events are applied; rate over the run.

        The rate counts from the first sample with events applied, so a worker that starts on
        a backlog is timed from its first batch, not from its start-up.
        """
        first: tuple[float, int] | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now, accepted = time.monotonic(), self.accepted()
            samples.append((now, accepted, _rss(self.process.pid)))
            if accepted and first is None:
                first = (now, accepted)
            if accepted >= target:
                assert first is not None
                return accepted - first[1], now - first[0]
            time.sleep(0.1)
        raise RuntimeError(
            f"worker applied {self.accepted():,} of {target:,}; see {self.process.log}"
        )

    def kill9(self) -> None:
        self.process.proc.kill()
        self.process.proc.wait(10)


async def _probe_visible(namespace: Namespace, api: str, started: float, limit_s: float) -> float:
    """Publish one current event and poll the usage API until it counts; seconds since ``started``."""
    settings = namespace.settings()
    account = "scale-probe"
    occurred = datetime.now(UTC)
    event = {
        "event_id": uuid.uuid4().hex,
        "account_id": account,
        "app_id": "probe",
        "occurred_at": occurred.isoformat(),
        "credits": "1",
    }
    producer = kafka_producer(settings)
    await producer.start()
    try:
        before = await _probe_calls(api, account, occurred)
        await producer.send_and_wait(
            settings.calls_topic, json.dumps(event).encode(), key=account.encode()
        )
    finally:
        await producer.stop()
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await _probe_calls(api, account, occurred) > before:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise RuntimeError("the probe event never became visible")


async def _probe_calls(api: str, account: str, around: datetime) -> int:
    day = around.date()
    params = {
        "from": (day - timedelta(days=1)).isoformat(),
        "to": (day + timedelta(days=2)).isoformat(),
        "tz": "UTC",
    }
    async with httpx.AsyncClient() as client:
        try:
            answer = await client.get(
                f"{api}/v1/accounts/{account}/usage",
                params=params,
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=2,
            )
        except httpx.HTTPError:
            return -1
    if answer.status_code != 200:
        return -1
    return int(answer.json()["total"]["calls"])


_RESTORED = re.compile(r"partition (\d+): restored ([\d,]+) ids")
_READY = re.compile(r"partition (\d+) ready at offset -?\d+ in ([\d.]+) s \(restored")


def _restore_figures(log: Path, since: int) -> dict[str, Any]:
    text = log.read_text(errors="replace")[since:]
    ids: dict[int, int] = {}
    for match in _RESTORED.finditer(text):
        ids[int(match.group(1))] = int(match.group(2).replace(",", ""))
    seconds = {int(m.group(1)): float(m.group(2)) for m in _READY.finditer(text)}
    return {
        "partitions": len(seconds),
        "ids": sum(ids.values()),
        "slowest_partition_s": max(seconds.values(), default=0.0),
    }


def _du(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def _expiry_ms(path: Path, live_ids: int, day_ids: int) -> dict[str, float]:
    """Build a store holding ``live_ids`` (one day of ``day_ids`` among them); time dropping it.

    ``drop_ms`` is the commit that expires the day (its state-log tombstones, one per id
    segment and day value, and the atomic range delete); ``compact_ms`` the compaction of the
    dropped range that frees its disk at once (it also flushes what the memtables hold, up to
    the write-buffer budget, whatever the live ids).
    """
    shutil.rmtree(path, ignore_errors=True)
    budget = StoreBudget(64 * 2**20, 64 * 2**20)
    store = PartitionStore.open(path, budget)
    rng = random.Random(3)
    first = 20_000
    days = max(1, (live_ids - day_ids) // day_ids)
    try:
        for day in range(first, first + days + 1):
            count = day_ids if day == first else (live_ids - day_ids) // days
            for start in range(0, count, 20_000):
                batch = store.batch()
                for _ in range(min(20_000, count - start)):
                    batch.put("ids", id_key(day, "scale-001", "%032x" % rng.getrandbits(128)), b"")
                store.write(batch)
        state = PartitionState(0, Limits(), 1, (first + days + 2) * DAY_MS, first)
        outcome = BatchOutcome(1, 1, expired_before_day=first + 1)
        started = time.perf_counter()
        commit = prepare_commit(store, state, outcome, new_tag(), set())
        commit.finish(0)
        store.write(commit.batch)
        dropped = time.perf_counter()
        store.compact_expired(first + 1)
        compacted = time.perf_counter()
        return {
            "drop_ms": round((dropped - started) * 1000, 1),
            "compact_ms": round((compacted - dropped) * 1000, 1),
        }
    finally:
        store.close()
        shutil.rmtree(path, ignore_errors=True)


def run_state_scale(sizes: ScaleSizes) -> dict[str, Any]:
    """Every figure of the module docstring."""
    namespace = Namespace("state-scale")
    namespace.flush_redis()
    data = RESULTS / f"data-{namespace.tag}"
    namespace.extra.update({"CREDITFLOW_DATA_DIR": str(data), "CREDITFLOW_LOG_LEVEL": "info"})
    result: dict[str, Any] = {"sizes": sizes.__dict__}
    month = 30 * 86_400
    result["produce_seconds"] = round(
        asyncio.run(produce(namespace, sizes.ids, sizes, month, 1)), 1
    )
    worker = _Worker(namespace, "worker")
    api = Process(creditflow("api", "--port", str(port := free_port())), namespace, "api")
    api_url = f"http://127.0.0.1:{port}"
    try:
        samples: list[tuple[float, int, int]] = []
        events, seconds = worker.apply_until(sizes.ids, 3600, samples)
        at_1m = next((rss for _, accepted, rss in samples if accepted >= 1_000_000), 0)
        result["build"] = {
            "events": events,
            "seconds": round(seconds, 1),
            "events_per_second": round(events / seconds),
            "rss_at_1m_ids": at_1m,
            "rss_at_end": samples[-1][2],
            "peak_rss": worker.process.peak_rss_bytes(),
        }
        for label, spread, seed in (("current_time", 120, 2), ("backfill_30_days", month, 3)):
            # The input is produced while no worker runs (as bench/throughput.py and
            # bench/state_kept.py do): a producer beside the worker takes its share of the two
            # cores, and the figure is the worker's rate on a backlog.
            worker.process.stop()
            base = worker.accepted()
            asyncio.run(produce(namespace, sizes.extra_events, sizes, spread, seed))
            worker = _Worker(namespace, label)
            worker.wait_started(base, 120)
            phase: list[tuple[float, int, int]] = []
            events, seconds = worker.apply_until(base + sizes.extra_events, 1800, phase)
            result[label] = {
                "events": events,
                "seconds": round(seconds, 1),
                "events_per_second": round(events / seconds),
                "ids_remembered": base,
                "rss_at_end": phase[-1][2],
                "peak_rss": worker.process.peak_rss_bytes(),
            }
        ids = worker.accepted()
        result["ids_remembered"] = ids
        result["peak_rss"] = max(
            result[part]["peak_rss"] for part in ("build", "current_time", "backfill_30_days")
        )
        disk = _du(data)
        result["disk"] = {"bytes": disk, "bytes_per_id": round(disk / ids, 1)}

        worker.kill9()
        started = time.monotonic()
        worker = _Worker(namespace, "restarted")
        result["restart_to_visible_s"] = round(
            asyncio.run(_probe_visible(namespace, api_url, started, 120)), 2
        )

        worker.kill9()
        shutil.rmtree(data)
        log_start = 0
        started = time.monotonic()
        worker = _Worker(namespace, "restored")
        result["restore_to_visible_s"] = round(
            asyncio.run(_probe_visible(namespace, api_url, started, 1800)), 2
        )
        restore = _restore_figures(worker.process.log, log_start)
        restore["wall_seconds"] = round(time.monotonic() - started, 1)
        restore["ids_per_second"] = round(restore["ids"] / result["restore_to_visible_s"])
        result["restore"] = restore
    finally:
        worker.process.stop()
        api.stop()
        shutil.rmtree(data, ignore_errors=True)
    result["expiry"] = expiry_figures(sizes.ids)
    return result


def expiry_figures(ids: int) -> dict[str, Any]:
    """Dropping one day of a partition of ``ids / 8`` ids, beside the same day among 1M."""
    day_ids = max(1, ids // 8 // 30)
    return {
        "day_ids": day_ids,
        "with_1m_live_ids": _expiry_ms(RESULTS / "expiry-small", 1_000_000, day_ids),
        f"with_{ids // 8:,}_live_ids".replace(",", "_"): _expiry_ms(
            RESULTS / "expiry-large", ids // 8, day_ids
        ),
    }
