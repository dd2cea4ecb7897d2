"""Benchmark traffic: call events produced fast (preloaded) or at a steady rate."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer, TopicPartition

from config.settings import Settings
from config.topics import ensure_topics

APPS = ("support-bot", "doc-search", "summarizer", "translator", "code-review")


def producer(settings: Settings, linger_ms: int = 0, **options: int) -> AIOKafkaProducer:
    """An idempotent ``acks=all`` producer (not started), as the product's own clients are."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        **options,
    )


async def send_all(
    producer: AIOKafkaProducer, topic: str, records: Iterable[tuple[bytes, bytes]], window: int
) -> None:
    """Send every ``(key, value)``, awaiting the acknowledgements ``window`` records at a time."""
    pending = []
    for key, value in records:
        pending.append(await producer.send(topic, value, key=key))
        if len(pending) >= window:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


def events(
    rng: random.Random, account: str, count: int, now: datetime, spread_s: int, late: float = 0.0
) -> Iterator[bytes]:
    """``count`` events of one account, occurring within ``spread_s`` seconds before ``now``."""
    for _ in range(count):
        occurred = now - timedelta(milliseconds=rng.randint(0, spread_s * 1000))
        if late and rng.random() < late:
            occurred -= timedelta(seconds=rng.randint(3600, 7 * 86400))
        millis = rng.randint(1, 20_000)
        yield (
            '{"event_id":"%032x","account_id":"%s","app_id":"%s","occurred_at":"%s",'
            '"credits":"%d.%03d","calls":1}'
            % (
                rng.getrandbits(128),
                account,
                APPS[rng.randrange(len(APPS))],
                occurred.isoformat(timespec="milliseconds"),
                millis // 1000,
                millis % 1000,
            )
        ).encode()


def records(
    count: int, batch: int, accounts: int, seed: int = 7, spread_s: int = 120
) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` records: single events (batch 1) or JSON arrays of ``batch`` events."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    names = [f"acct-{i:03d}" for i in range(accounts)]
    for n in range(count // batch):
        account = names[n % accounts]
        items = list(events(rng, account, batch, now, spread_s))
        value = items[0] if batch == 1 else b"[" + b",".join(items) + b"]"
        yield account.encode(), value


async def ready_topics(settings: Settings, within_s: float = 60) -> None:
    """Create the topics, then wait until every partition of the input and state topics has a
    leader (a broker just asked to create topics answers NotLeaderForPartition for a while)."""
    await ensure_topics(settings)
    client = producer(settings)
    await client.start()
    try:
        deadline = time.monotonic() + within_s
        topics = (settings.calls_topic, settings.state_topic)
        for topic in topics:
            await client.client.add_topic(topic)
        cluster = client.client.cluster
        while True:
            leaders = [
                ((topic, partition), cluster.leader_for_partition(TopicPartition(topic, partition)))
                for topic in topics
                for partition in range(settings.partitions)
            ]
            missing = [tp for tp, leader in leaders if leader is None or leader < 0]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"no leader for {len(missing)} partitions, e.g. {missing[0]}")
            await client.client.force_metadata_update()
            await asyncio.sleep(0.2)
    finally:
        await client.stop()


async def preload(settings: Settings, count: int, batch: int, accounts: int = 50) -> float:
    """Produce ``count`` events into the input topic; return the seconds it took."""
    await ready_topics(settings)
    client = producer(
        settings, linger_ms=20, max_batch_size=1024 * 1024, max_request_size=8 * 1024 * 1024
    )
    await client.start()
    started = time.monotonic()
    try:
        await send_all(client, settings.calls_topic, records(count, batch, accounts), 5000)
    finally:
        await client.stop()
    return time.monotonic() - started


async def steady(
    settings: Settings, rate: float, batch: int, seconds: float, accounts: int = 50
) -> int:
    """Produce about ``rate`` events per second for ``seconds``; return events sent."""
    client = producer(settings, linger_ms=2)
    await client.start()
    rng = random.Random(11)
    names = [f"load-{i:03d}" for i in range(accounts)]
    sent = 0
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) - sent
            if due < batch:
                await asyncio.sleep(0.005)
                continue
            now = datetime.now(UTC)
            while due >= batch:
                account = names[rng.randrange(accounts)]
                items = list(events(rng, account, batch, now, 2))
                value = items[0] if batch == 1 else b"[" + b",".join(items) + b"]"
                await client.send(settings.calls_topic, value, key=account.encode())
                sent += batch
                due -= batch
    finally:
        await client.stop()
    return sent
