"""``creditflow dlq list`` and ``creditflow dlq redrive``."""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaProducer

from config.settings import Settings
from models.dlq import DlqRecord
from streams.replay import replay
from streams.topics import partitions_of

__all__ = ("REDRIVE_HEADER", "list_command", "read_dlq", "redrive_command")

REDRIVE_HEADER = "creditflow-redrive-of"


async def read_dlq(settings: Settings) -> AsyncIterator[DlqRecord]:
    """Every dead-letter record, once per ``dlq_id`` (replays can publish one twice)."""
    seen: set[str] = set()
    partitions = await partitions_of(settings, settings.dlq_topic)
    async for batch in replay(settings, settings.dlq_topic, partitions):
        for message in batch:
            record = DlqRecord.model_validate_json(message.value or b"{}")
            if record.dlq_id not in seen:
                seen.add(record.dlq_id)
                yield record


def _original(record: DlqRecord) -> bytes:
    if record.original is not None:
        return record.original.encode()
    return base64.b64decode(record.original_base64 or "")


async def list_command(settings: Settings, reason: str | None, limit: int, as_json: bool) -> int:
    """Print dead-lettered items, newest last."""
    shown = 0
    counts: dict[str, int] = {}
    async for record in read_dlq(settings):
        counts[record.reason.value] = counts.get(record.reason.value, 0) + 1
        if reason and record.reason.value != reason:
            continue
        shown += 1
        if shown > limit:
            continue
        if as_json:
            sys.stdout.write(record.model_dump_json(by_alias=True) + "\n")
        else:
            original = _original(record)[:60].decode(errors="replace")
            print(f"{record.dlq_id:<34} {record.reason.value:<18} {record.detail[:70]}  {original}")
    if not as_json:
        summary = ", ".join(f"{name}={count}" for name, count in sorted(counts.items())) or "empty"
        print(f"-- {min(shown, limit)} shown of {shown} matching; by reason: {summary}")
    return 0


async def redrive_command(
    settings: Settings, reason: str | None, ids: list[str] | None, dry_run: bool
) -> int:
    """Publish the original bytes of selected dead letters to the input topic again.

    Re-driving is safe to repeat: events that count are deduplicated by event_id.
    """
    if not reason and not ids:
        print("choose what to re-drive with --reason or --id", file=sys.stderr)
        return 2
    wanted = set(ids or [])
    selected = [
        record
        async for record in read_dlq(settings)
        if (not reason or record.reason.value == reason) and (not wanted or record.dlq_id in wanted)
    ]
    if dry_run:
        for record in selected:
            print(f"would re-drive {record.dlq_id} ({record.reason.value})")
        return 0
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        futures = [
            await producer.send(
                settings.calls_topic,
                _original(record),
                key=(record.account_id or record.source.key or "").encode() or None,
                headers=[(REDRIVE_HEADER, record.dlq_id.encode())],
            )
            for record in selected
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    print(f"re-drove {len(selected)} dead letters to {settings.calls_topic}")
    return 0
