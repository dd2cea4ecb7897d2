"""Fault injection: every valid event counts exactly once through kills, restarts and rebalances.

Each case publishes a known stream with a plain Kafka client (10% of events resent with the same
event_id, 5% late by hours to weeks, a few beyond the late horizon), injects its fault while the
stream flows, then compares every (account, app, bucket) of the Redis view and of the compacted
bucket topic with the reference, exactly. Figures go to test-artifacts/reliability.jsonl.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.integration.chaos import (
    Publisher,
    Stream,
    compare,
    dead_lettered,
    generate,
    record,
    resend_records,
    topic_buckets,
    view_buckets,
)
from tests.integration.harness import Namespace, WorkerProcess, new_env, stack, wait_until

pytestmark = pytest.mark.faults

FAST_GROUP = {
    "CREDITFLOW_SESSION_TIMEOUT_SECONDS": "6",
    "CREDITFLOW_REBALANCE_TIMEOUT_SECONDS": "10",
}


@dataclass
class Run:
    namespace: Namespace
    stream: Stream
    workers: list[WorkerProcess] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def start_worker(self, label: str = "worker") -> WorkerProcess:
        worker = WorkerProcess(self.namespace, label).start()
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()


async def run_case(
    case: str,
    events: int,
    seconds: float,
    faults: Callable[[Run], Awaitable[None]],
    seed: int,
    after: Callable[[Run, Publisher], Awaitable[None]] | None = None,
    namespace: Namespace | None = None,
    **shape: Any,
) -> dict[str, Any]:
    namespace = namespace or new_env(case, extra=FAST_GROUP)
    stream = generate(namespace.name[-8:], seed, events, **shape)
    run = Run(namespace, stream)
    publisher = Publisher(namespace)
    started = time.monotonic()
    try:
        await run.start_worker().wait_assigned()
        publishing = asyncio.ensure_future(publisher.publish(stream.records, seconds))
        await faults(run)
        await publishing
        if after is not None:
            await after(run, publisher)
        if not any(worker.alive for worker in run.workers):
            run.notes["worker_restarted_after_faults"] = True
            await run.start_worker("final").wait_assigned()

        async def converged() -> bool:
            if compare(stream.reference, await view_buckets(namespace, stream.accounts)) != {
                "lost": 0, "double_counted": 0, "buckets_with_wrong_credits": 0
            }:  # fmt: skip
                return False
            # A last record of only beyond-horizon events changes no bucket: wait for its
            # dead letters too.
            dead = await dead_lettered(namespace)
            return {event_id for reason, event_id in dead if reason == "too_late"} >= (
                stream.beyond_ids
            )

        try:
            await wait_until(converged, timeout=120, interval=0.5)
        except AssertionError:
            run.notes["converged"] = False
        view = compare(stream.reference, await view_buckets(namespace, stream.accounts))
        topic = compare(stream.reference, await topic_buckets(namespace, stream.accounts))
        dead = await dead_lettered(namespace)
        too_late_ids = {event_id for reason, event_id in dead if reason == "too_late"}
        line = record(
            case,
            stream,
            view,
            topic_lost=topic["lost"],
            topic_double_counted=topic["double_counted"],
            dead_lettered_too_late=len(too_late_ids & stream.beyond_ids),
            publisher_retried_chunks=publisher.retried_chunks,
            seconds=round(time.monotonic() - started, 1),
            **run.notes,
        )
    finally:
        await publisher.close()
        run.stop_all()
    assert view == {"lost": 0, "double_counted": 0, "buckets_with_wrong_credits": 0}, line
    assert topic == {"lost": 0, "double_counted": 0, "buckets_with_wrong_credits": 0}, line
    assert too_late_ids >= stream.beyond_ids, "every event beyond the horizon is dead-lettered"
    assert not too_late_ids - stream.beyond_ids, (
        "no event within the horizon is refused as too late"
    )
    return line


async def test_kill9_the_worker_five_times_mid_stream() -> None:
    rng = random.Random(1)

    async def kill_five_times(run: Run) -> None:
        for _ in range(5):
            await asyncio.sleep(rng.uniform(1.5, 3.5))
            run.workers[-1].kill9()
            await run.start_worker("restarted").wait_assigned()
        run.notes["kills"] = 5

    await run_case("kill9", events=30_000, seconds=30, faults=kill_five_times, seed=11)


async def test_kill9_during_a_backfill_spread_over_twenty_days() -> None:
    """Most events are weeks old, so runs touch many days and local write batches are large:
    kills land inside them as often as between them."""
    rng = random.Random(2)

    async def kill_six_times(run: Run) -> None:
        for _ in range(6):
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            run.workers[-1].kill9()
            await run.start_worker("restarted").wait_assigned()
        run.notes["kills"] = 6

    await run_case(
        "backfill-kill9", events=40_000, seconds=20, faults=kill_six_times, seed=17,
        late_fraction=0.8,
    )  # fmt: skip


async def test_local_store_deleted_while_the_worker_is_down() -> None:
    """The state is restored from the state log alone, then the stream goes on."""

    async def lose_the_disk(run: Run) -> None:
        await asyncio.sleep(5)
        worker = run.workers[-1]
        worker.kill9()
        assert worker.data_dir.exists()
        shutil.rmtree(worker.data_dir)
        await run.start_worker("worker").wait_assigned()  # same label: same, now empty, dir
        run.notes["local_store_deleted"] = True

    await run_case("wiped-store", events=20_000, seconds=15, faults=lose_the_disk, seed=18)


async def test_broker_stop_and_restart_mid_stream() -> None:
    async def bounce_broker(run: Run) -> None:
        await asyncio.sleep(6)
        await asyncio.to_thread(stack, "stop", "kafka")
        await asyncio.sleep(3)
        await asyncio.to_thread(stack, "up", "kafka")
        run.notes["broker_restarts"] = 1

    await run_case("broker", events=20_000, seconds=20, faults=bounce_broker, seed=12)


async def test_redis_flushed_then_restarted_mid_stream() -> None:
    async def lose_redis(run: Run) -> None:
        await asyncio.sleep(5)
        client = aioredis.Redis.from_url(run.namespace.env["REDIS_URL"])
        await client.flushdb()
        await client.aclose()
        await asyncio.sleep(5)
        await asyncio.to_thread(stack, "stop", "redis")
        await asyncio.sleep(2)
        await asyncio.to_thread(stack, "up", "redis")
        run.notes["redis_flushes"] = 1
        run.notes["redis_restarts"] = 1

    await run_case("redis", events=20_000, seconds=20, faults=lose_redis, seed=13)


async def test_worker_joins_then_one_leaves_mid_stream() -> None:
    async def rebalance(run: Run) -> None:
        await asyncio.sleep(4)
        await run.start_worker("joiner").wait_assigned()
        await asyncio.sleep(5)
        run.workers[0].stop()
        run.notes["joined"] = 1
        run.notes["left"] = 1

    await run_case("rebalance", events=20_000, seconds=20, faults=rebalance, seed=14)


async def test_resends_after_a_restart_count_once() -> None:
    async def nothing(run: Run) -> None:
        return None

    async def kill_then_resend(run: Run, publisher: Publisher) -> None:
        run.workers[-1].kill9()
        await run.start_worker("restarted").wait_assigned()
        await publisher.publish(resend_records(run.stream, seed=5, fraction=0.10), seconds=3)
        run.notes["resent_after_restart"] = True

    line = await run_case(
        "resend", events=15_000, seconds=10, faults=nothing, seed=15, after=kill_then_resend
    )
    assert line["resent"] >= 0.18 * line["unique_valid_events"]


async def test_late_events_update_history_and_too_old_ones_are_dead_lettered() -> None:
    async def nothing(run: Run) -> None:
        return None

    line = await run_case("late", events=15_000, seconds=10, faults=nothing, seed=16)
    assert line["late"] >= 0.04 * 15_000
    assert line["dead_lettered_too_late"] == line["beyond_horizon"] > 0
