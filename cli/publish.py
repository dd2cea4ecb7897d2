"""``creditflow publish``: send JSON lines to ``usage.calls.v1`` as they are (raw records)."""

from __future__ import annotations

import asyncio
from typing import BinaryIO

import msgspec
from aiokafka import AIOKafkaProducer

from config.settings import Settings
from config.topics import ensure_topics

__all__ = ("publish_lines", "record_key")


def record_key(line: bytes) -> bytes | None:
    """The account of a line's first event, used as the record key (None if unreadable)."""
    try:
        value = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return None
    first = value[0] if isinstance(value, list) and value else value
    if isinstance(first, dict) and isinstance(first.get("account_id"), str):
        return str(first["account_id"]).encode()
    return None


async def publish_lines(settings: Settings, stream: BinaryIO) -> int:
    """Publish each non-empty line as one record; the worker validates (bad lines reach the DLQ)."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    sent = 0
    try:
        futures = []
        for line in stream:
            line = line.strip()
            if not line:
                continue
            futures.append(await producer.send(settings.calls_topic, line, key=record_key(line)))
            sent += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent
