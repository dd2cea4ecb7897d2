"""The serving view on the real stack: rebuilt exact after a wipe, on one Redis and on the
Redis Cluster, with an exact answer through the loss of a shard and a master killed -9."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis

from core.days import DAY_MS, Bucket, DayKey, DayUsage
from tests.integration.chaos import Publisher, Stream, compare, generate, view_buckets
from tests.integration.harness import (
    BACKENDS,
    REDIS_CLUSTER_PORT,
    ROOT,
    Namespace,
    WorkerProcess,
    api_client,
    auth,
    new_env,
    raw_producer,
    stack,
    wait_until,
    wipe_view,
)
from view.epoch import ViewEpoch
from view.keys import key_slot
from view.reader import ViewReader
from view.writer import ViewWriter

EXACT = {"lost": 0, "double_counted": 0, "buckets_with_wrong_credits": 0}


async def _publish(namespace: Namespace, records: list[tuple[bytes | None, bytes]]) -> None:
    publisher = Publisher(namespace)
    try:
        await publisher.publish(records, seconds=1)
    finally:
        await publisher.close()


async def _converged(namespace: Namespace, stream: Stream, timeout: float = 60) -> None:
    async def exact() -> bool:
        return compare(stream.reference, await view_buckets(namespace, stream.accounts)) == EXACT

    await wait_until(exact, timeout=timeout, interval=0.5)


async def _total(client: httpx.AsyncClient, account: str) -> httpx.Response:
    today = datetime.now(UTC).date()
    params = {
        "from": (today - timedelta(days=40)).isoformat(),
        "to": (today + timedelta(days=2)).isoformat(),
        "tz": "UTC",
    }
    return await client.get(f"/v1/accounts/{account}/usage", params=params, headers=auth())


def _reference_total(stream: Stream, account: str) -> tuple[int, Decimal]:
    values = [value for key, value in stream.reference.items() if key[0] == account]
    return sum(calls for calls, _ in values), sum((c for _, c in values), Decimal(0))


async def _answers_exact(client: httpx.AsyncClient, stream: Stream, accounts: list[str]) -> bool:
    for account in accounts:
        response = await _total(client, account)
        if response.status_code != 200:
            return False
        total = response.json()["total"]
        if (total["calls"], Decimal(total["credits"])) != _reference_total(stream, account):
            return False
    return True


@pytest.fixture(params=BACKENDS)
async def running(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Namespace, Stream]]:
    """A worker that has applied a known stream (late events and resends included)."""
    namespace = new_env("view", request.param)
    stream = generate(namespace.name[-8:], seed=21, events=4000)
    worker = WorkerProcess(namespace).start()
    try:
        await worker.wait_assigned()
        await _publish(namespace, stream.records)
        await _converged(namespace, stream)
        worker.stop()
        yield namespace, stream
    finally:
        worker.stop()


async def test_a_wiped_view_answers_503_then_is_rebuilt_exact(
    running: tuple[Namespace, Stream],
) -> None:
    namespace, stream = running
    assert await wipe_view(namespace) > 0
    async with api_client(namespace.settings()) as client:
        response = await _total(client, stream.accounts[0])
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "view_rebuilding"
        health = await client.get("/healthz")
        assert (health.status_code, health.json()["view"]) == (503, "rebuilding")
        worker = WorkerProcess(namespace, "rebuilder").start()
        try:
            await wait_until(
                lambda: _answers_exact(client, stream, stream.accounts), timeout=60, interval=0.5
            )
            assert (
                compare(stream.reference, await view_buckets(namespace, stream.accounts)) == EXACT
            )
            # Progress lines with a measured rate (logged right after the markers are set).
            await wait_until(lambda: "view rebuilt from" in worker.log_text(), timeout=10)
            assert "records/s" in worker.log_text()
        finally:
            worker.stop()


async def test_finding_03_a_bucket_above_1e9_credits_and_unreadable_records_survive_a_rebuild() -> (
    None
):
    namespace = new_env("big")
    settings = namespace.settings()
    account = f"big-{namespace.name[-8:]}"
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    events = [
        {
            "event_id": f"e{i}",
            "account_id": account,
            "app_id": "bot",
            "occurred_at": now.isoformat(),
            "credits": credits,
        }
        for i, credits in enumerate(["1000000000", "1000000000", "0.000001"])
    ]
    worker = WorkerProcess(namespace).start()
    try:
        await worker.wait_assigned()
        producer = await raw_producer(settings)
        try:
            await producer.send_and_wait(
                settings.calls_topic, json.dumps(events).encode(), key=account.encode()
            )
            # Records a rebuild cannot read: not JSON, and a day record with a slot out of range.
            bad_day = {
                "format": 2,
                "account_id": account,
                "app_id": "bot",
                "day": "2026-01-01",
                "version": 1,
                "slots": [[96, 1, "1"]],
            }
            for key, value in (
                (b"junk-1", b"\xff not json"),
                (b"junk-2", json.dumps(bad_day).encode()),
            ):
                await producer.send_and_wait(settings.buckets_topic, value, key=key)
        finally:
            await producer.stop()
        async with api_client(settings) as client:

            async def counted() -> bool:
                response = await _total(client, account)
                return (
                    response.status_code == 200
                    and response.json()["total"]["credits"] == "2000000000.000001"
                )

            await wait_until(counted, timeout=30)
            worker.stop()
            await wipe_view(namespace)
            assert (await _total(client, account)).status_code == 503
            worker = WorkerProcess(namespace, "rebuilder").start()
            await wait_until(counted, timeout=60)
            answer = (await _total(client, account)).json()
            assert answer["apps"] == [{"app_id": "bot", "calls": 3, "credits": "2000000000.000001"}]

            async def skipped() -> bool:
                metrics = (await client.get("/metrics")).text
                return 'creditflow_view_skipped_total{reason="unreadable"} 2' in metrics

            await wait_until(skipped, timeout=15)
            assert "skipped unreadable record" in worker.log_text()
    finally:
        worker.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_day_writes_are_versioned_and_cached_reads_follow_them(backend: str) -> None:
    namespace = new_env("days", backend)
    client = namespace.view_client()
    keys = namespace.view_keys()
    writer = ViewWriter(client, keys)
    reader = ViewReader(client, keys, namespace.partitions, 1 << 20)
    epoch = ViewEpoch(client, keys)
    day = DayKey("acme", "bot", 20_000)  # 2024-10-04
    newer = DayUsage(7, {4: Bucket(2, 5_000_000), 90: Bucket(1, 1)})
    older = DayUsage(5, {4: Bucket(9, 9)})
    edges = [day.day * DAY_MS + 3 * 900_000, day.day * DAY_MS + 91 * 900_000]
    try:
        await epoch.begin("e1")
        assert await epoch.finish("e1") == 0
        assert await writer.write([(day, newer.columns())])
        first = await reader.usage("acme", edges)
        assert first.apps["bot"].between(edges[0], edges[1]) == (2, 3, 5_000_001)
        # Older and equal versions change nothing, in whatever order they come.
        assert await writer.write([(day, older.columns())])
        assert await writer.write([(day, newer.columns())])
        again = await reader.usage("acme", edges)
        assert again.seq == first.seq
        assert await reader.buckets("acme") == {
            ("bot", day.day * DAY_MS + 4 * 900_000): Bucket(2, 5_000_000),
            ("bot", day.day * DAY_MS + 90 * 900_000): Bucket(1, 1),
        }
        # A newer version wins, and the cached month is read again because its stamp moved.
        assert await writer.write([(day, DayUsage(8, {4: Bucket(3, 6_000_000)}).columns())])
        latest = await reader.usage("acme", edges)
        assert latest.seq > first.seq
        assert latest.apps["bot"].between(edges[0], edges[1]) == (1, 3, 6_000_000)
        assert reader.cached_bytes > 0
    finally:
        await client.aclose()


# ------------------------------------------------------------------ Redis Cluster faults


def _cluster(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)


_NODES = range(REDIS_CLUSTER_PORT, REDIS_CLUSTER_PORT + 6)


def _pid(port: int) -> int:
    """The process id of the cluster node on ``port`` (as scripts/stack recorded it)."""
    return int((ROOT / ".local" / "rcluster" / str(port) / "redis.pid").read_text())


def _slots() -> list[Any]:
    """``CLUSTER SLOTS`` as the first node that answers sees it."""
    for port in _NODES:
        try:
            return list(_cluster(port).execute_command("CLUSTER SLOTS"))
        except redis.RedisError:
            continue
    raise AssertionError("no cluster node answers")


def _master_of(account: str) -> int:
    """Port of the master serving the account's slot."""
    slot = key_slot(account)
    for start, end, master, *_ in _slots():
        if start <= slot <= end:
            return int(master[1])
    raise AssertionError(f"slot {slot} is not served")


def _serves_slots(port: int) -> bool:
    """Whether the surviving nodes still see ``port`` as the owner of slots."""
    for other in _NODES:
        if other == port:
            continue
        try:
            nodes = _cluster(other).execute_command("CLUSTER NODES")
        except redis.RedisError:
            continue
        return bool(nodes.get(f"127.0.0.1:{port}", {}).get("slots"))
    raise AssertionError("no cluster node answers")


@pytest.fixture
async def on_cluster() -> AsyncIterator[tuple[Namespace, Stream, WorkerProcess]]:
    namespace = new_env("shard", "cluster", extra={"CREDITFLOW_SESSION_TIMEOUT_SECONDS": "6"})
    stream = generate(namespace.name[-8:], seed=23, events=3000, accounts=9)
    worker = WorkerProcess(namespace).start()
    try:
        await worker.wait_assigned()
        await _publish(namespace, stream.records)
        await _converged(namespace, stream)
        yield namespace, stream, worker
    finally:
        worker.stop()
        await asyncio.to_thread(stack, "up", "rcluster")


@pytest.mark.rcluster
async def test_cluster_a_shard_that_lost_its_data_is_noticed_and_rebuilt(
    on_cluster: tuple[Namespace, Stream, WorkerProcess],
) -> None:
    namespace, stream, worker = on_cluster
    worker.stop()
    lost = _master_of(stream.accounts[0])
    # What a master restarted without persistence before its failover looks like (and what
    # its replica then copies): the shard is empty, the other shards are intact.
    _cluster(lost).flushall()
    on_lost = [a for a in stream.accounts if _master_of(a) == lost]
    intact = [a for a in stream.accounts if _master_of(a) != lost]
    assert on_lost and intact
    async with api_client(namespace.settings()) as client:
        for account in on_lost:
            assert (await _total(client, account)).status_code == 503
        assert await _answers_exact(client, stream, intact), "other shards answer as before"
        assert (await client.get("/healthz")).status_code == 503
        await _rebuilt(namespace, client, stream)


async def _rebuilt(namespace: Namespace, client: httpx.AsyncClient, stream: Stream) -> None:
    """Start a worker on the wiped view; return once it answers every account exactly again."""
    worker = WorkerProcess(namespace, "rebuilder").start()
    try:
        await wait_until(
            lambda: _answers_exact(client, stream, stream.accounts), timeout=60, interval=0.5
        )
        assert compare(stream.reference, await view_buckets(namespace, stream.accounts)) == EXACT
    finally:
        worker.stop()


@pytest.mark.rcluster
async def test_cluster_master_killed_9_replica_promoted_answers_exact(
    on_cluster: tuple[Namespace, Stream, WorkerProcess],
) -> None:
    namespace, stream, worker = on_cluster
    victim = _master_of(stream.accounts[0])
    os.kill(_pid(victim), signal.SIGKILL)
    # Events of more accounts keep coming during the failover; the worker keeps what Redis
    # refuses until the cluster answers again.
    more = generate(namespace.name[-8:] + "b", seed=24, events=2000, accounts=9)
    await _publish(namespace, more.records)
    await wait_until(lambda: not _serves_slots(victim), timeout=30, interval=0.2)
    both = Stream(
        reference={**stream.reference, **more.reference}, accounts=stream.accounts + more.accounts
    )
    await _converged(namespace, both, timeout=90)
    async with api_client(namespace.settings()) as client:
        await wait_until(
            lambda: _answers_exact(client, both, both.accounts), timeout=30, interval=0.5
        )
    assert worker.alive


@pytest.mark.rcluster
async def test_cluster_restarted_whole_starts_again_and_the_view_is_rebuilt(
    on_cluster: tuple[Namespace, Stream, WorkerProcess],
) -> None:
    # Every node stopped, then started again by scripts/stack: no node may be refused for
    # owning slots (its stale view is everybody's), and the empty view is rebuilt from Kafka.
    namespace, stream, worker = on_cluster
    worker.stop()
    await asyncio.to_thread(stack, "down", "rcluster")
    await asyncio.to_thread(stack, "up", "rcluster")
    async with api_client(namespace.settings()) as client:
        assert (await _total(client, stream.accounts[0])).status_code == 503
        await _rebuilt(namespace, client, stream)
