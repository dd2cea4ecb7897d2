"""Fault-injection support: a known stream, a stubborn publisher, and an exact comparison.

The reference is computed here with the standard library from the generated events; the
system's answer is read back from the Redis view and from the compacted bucket topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from tests.integration.harness import ARTIFACTS, Namespace, read_topic
from view.reader import ViewReader

BUCKET = 900
BucketKey = tuple[str, str, int]  # (account, app, bucket index = epoch seconds // 900)
REPORT = ARTIFACTS / "reliability.jsonl"


@dataclass
class Stream:
    records: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    reference: dict[BucketKey, tuple[int, Decimal]] = field(default_factory=dict)
    accounts: list[str] = field(default_factory=list)
    events_sent: int = 0  # including resends and rejected ones
    unique_valid: int = 0
    resent: int = 0
    late: int = 0
    beyond_horizon: int = 0
    resend_pool: list[tuple[str, bytes]] = field(default_factory=list)
    beyond_ids: set[str] = field(default_factory=set)


def generate(
    tag: str,
    seed: int,
    events: int,
    *,
    accounts: int = 6,
    resend_fraction: float = 0.10,
    late_fraction: float = 0.05,
    beyond_fraction: float = 0.005,
    now: datetime | None = None,
) -> Stream:
    """Events (calls=1 each, so counts are calls) in records of 1 to 40, with resends and late ones."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    stream = Stream(accounts=[f"c{i}-{tag}" for i in range(accounts)])
    apps = ["chat", "search", "ocr", "voice"]
    pending: dict[str, list[bytes]] = {}
    for n in range(events):
        account = rng.choice(stream.accounts)
        roll = rng.random()
        if roll < beyond_fraction:
            occurred = now - timedelta(days=40, seconds=rng.randint(0, 86400))
            stream.beyond_horizon += 1
            stream.beyond_ids.add(f"{tag}-{n}")
        elif roll < beyond_fraction + late_fraction:
            occurred = now - timedelta(seconds=rng.randint(2 * 3600, 20 * 86400))
            stream.late += 1
        else:
            occurred = now - timedelta(seconds=rng.uniform(0, 6 * 3600))
        app = rng.choice(apps)
        credits = Decimal(rng.randint(1, 9_999_999)) / 1000
        raw = json.dumps(
            {
                "event_id": f"{tag}-{n}",
                "account_id": account,
                "app_id": app,
                "occurred_at": occurred.isoformat(timespec="milliseconds"),
                "credits": str(credits),
            }
        ).encode()
        if roll >= beyond_fraction:
            key = (account, app, int(occurred.timestamp()) // BUCKET)
            calls, total = stream.reference.get(key, (0, Decimal(0)))
            stream.reference[key] = (calls + 1, total + credits)
            stream.unique_valid += 1
            stream.resend_pool.append((account, raw))
        pending.setdefault(account, []).append(raw)
        if rng.random() < resend_fraction and stream.resend_pool:
            again_account, again = rng.choice(stream.resend_pool)
            pending.setdefault(again_account, []).append(again)
            stream.resent += 1
        for name in list(pending):
            if len(pending[name]) >= rng.randint(1, 40):
                _flush(rng, stream, name, pending.pop(name))
    for name, items in pending.items():
        _flush(rng, stream, name, items)
    return stream


def _flush(rng: random.Random, stream: Stream, account: str, items: list[bytes]) -> None:
    stream.events_sent += len(items)
    key = None if rng.random() < 0.05 else account.encode()
    value = items[0] if len(items) == 1 and rng.random() < 0.5 else b"[" + b",".join(items) + b"]"
    stream.records.append((key, value))


def resend_records(stream: Stream, seed: int, fraction: float) -> list[tuple[bytes | None, bytes]]:
    """Records that resend ``fraction`` of the stream's valid events (same bytes, same ids)."""
    rng = random.Random(seed)
    chosen = rng.sample(stream.resend_pool, int(len(stream.resend_pool) * fraction))
    by_account: dict[str, list[bytes]] = {}
    for account, raw in chosen:
        by_account.setdefault(account, []).append(raw)
    records: list[tuple[bytes | None, bytes]] = []
    for account, raws in by_account.items():
        for start in range(0, len(raws), 25):
            records.append((account.encode(), b"[" + b",".join(raws[start : start + 25]) + b"]"))
    stream.resent += len(chosen)
    stream.events_sent += len(chosen)
    return records


class Publisher:
    """Publishes records at a steady pace and never gives up: failed chunks are sent again."""

    def __init__(self, namespace: Namespace) -> None:
        self.settings = namespace.settings()
        self.producer: AIOKafkaProducer | None = None
        self.retried_chunks = 0

    async def _producer(self) -> AIOKafkaProducer:
        if self.producer is None:
            self.producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                acks="all",
                linger_ms=5,
                request_timeout_ms=5000,
                retry_backoff_ms=200,
            )
            await self.producer.start()
        return self.producer

    async def _reset(self) -> None:
        if self.producer is not None:
            with contextlib.suppress(KafkaError):
                await self.producer.stop()
        self.producer = None

    async def publish(self, records: list[tuple[bytes | None, bytes]], seconds: float) -> None:
        """Send ``records`` spread over about ``seconds``."""
        chunk = max(1, len(records) // max(1, int(seconds * 10)))
        started = time.monotonic()
        for index in range(0, len(records), chunk):
            part = records[index : index + chunk]
            while True:
                try:
                    producer = await self._producer()
                    futures = [
                        await producer.send(self.settings.calls_topic, value, key=key)
                        for key, value in part
                    ]
                    await asyncio.gather(*futures)
                    break
                except (KafkaError, OSError):
                    # The broker is down or restarting: like any producer, send the chunk again.
                    self.retried_chunks += 1
                    await self._reset()
                    await asyncio.sleep(0.5)
            target = started + seconds * (index + len(part)) / len(records)
            await asyncio.sleep(max(0.0, target - time.monotonic()))

    async def close(self) -> None:
        await self._reset()


async def view_buckets(
    namespace: Namespace, accounts: list[str]
) -> dict[BucketKey, tuple[int, Decimal]]:
    """Every bucket of the accounts as the Redis view holds it."""
    client = namespace.view_client()
    reader = ViewReader(client, namespace.view_keys(), namespace.partitions, 0)
    try:
        found: dict[BucketKey, tuple[int, Decimal]] = {}
        for account in accounts:
            for (app, start_ms), bucket in (await reader.buckets(account)).items():
                credits = Decimal(bucket.micro) / 1_000_000
                found[(account, app, start_ms // 1000 // BUCKET)] = (bucket.calls, credits)
        return found
    finally:
        await client.aclose()


async def topic_buckets(
    namespace: Namespace, accounts: list[str]
) -> dict[BucketKey, tuple[int, Decimal]]:
    """Latest value of every bucket in the compacted bucket topic (day records, format 2)."""
    wanted = set(accounts)
    found: dict[tuple[str, str, str], tuple[int, dict[int, tuple[int, Decimal]]]] = {}
    for message in await read_topic(namespace, namespace.settings().buckets_topic):
        body = json.loads(message.value)
        if body["account_id"] not in wanted:
            continue
        key = (body["account_id"], body["app_id"], body["day"])
        slots = {slot: (calls, Decimal(credits)) for slot, calls, credits in body["slots"]}
        if key not in found or found[key][0] <= body["version"]:
            found[key] = (body["version"], slots)
    buckets: dict[BucketKey, tuple[int, Decimal]] = {}
    for (account, app, day), (_, slots) in found.items():
        midnight = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()) // BUCKET
        for slot, value in slots.items():
            buckets[(account, app, midnight + slot)] = value
    return buckets


def compare(
    reference: dict[BucketKey, tuple[int, Decimal]], got: dict[BucketKey, tuple[int, Decimal]]
) -> dict[str, int]:
    """Lost and double-counted events (calls are 1 per event) and buckets off in credits."""
    lost = double = wrong_credits = 0
    for key in reference.keys() | got.keys():
        ref_calls, ref_credits = reference.get(key, (0, Decimal(0)))
        got_calls, got_credits = got.get(key, (0, Decimal(0)))
        lost += max(0, ref_calls - got_calls)
        double += max(0, got_calls - ref_calls)
        wrong_credits += ref_credits != got_credits
    return {"lost": lost, "double_counted": double, "buckets_with_wrong_credits": wrong_credits}


def record(case: str, stream: Stream, outcome: dict[str, int], **extra: Any) -> dict[str, Any]:
    """Append one case's figures to test-artifacts/reliability.jsonl and return them."""
    accepted = (
        sum(calls for calls, _ in stream.reference.values())
        - outcome["lost"]
        + outcome["double_counted"]
    )
    line = {
        "case": case,
        "events_published": stream.events_sent,
        "unique_valid_events": stream.unique_valid,
        "accepted": accepted,
        "resent": stream.resent,
        "late": stream.late,
        "beyond_horizon": stream.beyond_horizon,
        **outcome,
        **extra,
    }
    Path(REPORT).parent.mkdir(exist_ok=True)
    with REPORT.open("a") as handle:
        handle.write(json.dumps(line) + "\n")
    print(json.dumps(line))
    return line


async def dead_lettered(namespace: Namespace) -> set[tuple[str, str]]:
    """``(reason, event_id)`` of every dead-lettered event in the namespace's DLQ."""
    found: set[tuple[str, str]] = set()
    for message in await read_topic(namespace, namespace.settings().dlq_topic):
        body = json.loads(message.value)
        found.add((body["reason"], json.loads(body["original"]).get("event_id", "?")))
    return found
