"""``creditflow loadgen``: call events at a steady rate, for demos, soak runs and benchmarks."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec
from aiokafka import AIOKafkaProducer

from config.settings import Settings
from config.topics import ensure_topics

__all__ = ("APP_NAMES", "LoadSpec", "make_event", "run_loadgen")

APP_NAMES = (
    "support-bot", "doc-search", "summarizer", "translator", "code-review",
    "voice-agent", "ocr", "recommender",
)  # fmt: skip


@dataclass(frozen=True)
class LoadSpec:
    """What to generate: rate (events/s), for how long, over which accounts and apps."""

    rate: float
    duration: float = 0.0
    accounts: list[str] = field(default_factory=lambda: ["acme"])
    apps: int = 4
    batch: int = 1
    late_fraction: float = 0.0
    duplicate_fraction: float = 0.0
    seed: int | None = None


def make_event(rng: random.Random, account: str, app: str, occurred: datetime) -> dict[str, object]:
    """One plausible call event (credits with up to three decimals, as a string)."""
    millis = rng.randint(50, 25_000)
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "account_id": account,
        "app_id": app,
        "occurred_at": occurred.isoformat(timespec="milliseconds"),
        "credits": f"{millis // 1000}.{millis % 1000:03d}",
        "calls": 1,
        "attributes": {"model": rng.choice(["alli-large", "alli-small"])},
    }


async def run_loadgen(settings: Settings, spec: LoadSpec) -> int:
    """Send events until ``duration`` elapses (forever if 0); returns how many were sent."""
    await ensure_topics(settings)
    rng = random.Random(spec.seed)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        linger_ms=5,
        acks="all",
        enable_idempotence=True,
    )
    await producer.start()
    recent: deque[bytes] = deque(maxlen=10_000)
    sent = 0
    started = time.monotonic()
    try:
        while spec.duration <= 0 or time.monotonic() - started < spec.duration:
            due = int((time.monotonic() - started) * spec.rate) - sent
            if due <= 0:
                await asyncio.sleep(0.01)
                continue
            for _ in range(0, due, spec.batch):
                account = rng.choice(spec.accounts)
                count = min(spec.batch, due)
                raws = [_next_event(rng, spec, account, recent) for _ in range(count)]
                value = raws[0] if spec.batch == 1 else b"[" + b",".join(raws) + b"]"
                await producer.send(settings.calls_topic, value, key=account.encode())
                sent += count
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def _next_event(rng: random.Random, spec: LoadSpec, account: str, recent: deque[bytes]) -> bytes:
    if recent and rng.random() < spec.duplicate_fraction:
        return rng.choice(recent)
    occurred = datetime.now(UTC)
    if rng.random() < spec.late_fraction:
        occurred -= timedelta(seconds=rng.randint(3600, 14 * 86400))
    app = APP_NAMES[rng.randrange(min(spec.apps, len(APP_NAMES)))]
    raw = msgspec.json.encode(make_event(rng, account, app, occurred))
    recent.append(raw)
    return raw
