"""``creditflow dlq list`` and ``creditflow dlq redrive``.

A dead letter keeps at most the first 256 KiB of what was rejected (``original_truncated``);
re-publishing that prefix would only fail again as invalid JSON. Re-drive therefore reads a
truncated original back from its source record (topic, partition, offset; the item at
``index`` of a batch) and checks it against the kept prefix and size. When the source is gone
(retention) or does not match, that dead letter is not re-driven and the command says so.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import AsyncIterator

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from config.settings import Settings
from config.topics import partitions_of
from models.dlq import DlqRecord
from streams.replay import replay

__all__ = (
    "REDRIVE_HEADER",
    "OriginalUnavailable",
    "list_command",
    "original_from_source",
    "read_dlq",
    "redrive_command",
)

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
    """The original bytes as the dead letter keeps them (a prefix when truncated)."""
    if record.original is not None:
        return record.original.encode()
    return base64.b64decode(record.original_base64 or "")


class OriginalUnavailable(Exception):
    """A truncated dead letter whose whole original cannot be recovered (the message says why)."""


def original_from_source(record: DlqRecord, source_value: bytes | None) -> bytes:
    """The whole original of a truncated dead letter, from its source record's value.

    The rejected event of a batch is the item at ``index``, cut out byte for byte. The result
    must start with the kept prefix and have the recorded size, so a record that is not the
    original (a reused offset, a different topic) is never re-driven in its place.
    """
    if source_value is None:
        raise OriginalUnavailable("its source record has no value (deleted by compaction)")
    original = source_value
    if record.index is not None:
        try:
            items = msgspec.json.decode(source_value, type=list[msgspec.Raw])
        except (msgspec.DecodeError, UnicodeDecodeError):
            raise OriginalUnavailable("its source record is not a JSON array") from None
        if record.index >= len(items):
            raise OriginalUnavailable(f"its source record has no item {record.index}")
        original = bytes(items[record.index])
    if not original.startswith(_original(record)) or (
        record.original_bytes is not None and len(original) != record.original_bytes
    ):
        raise OriginalUnavailable("its source record does not match the kept prefix and size")
    return original


async def _fetch_source(consumer: AIOKafkaConsumer, record: DlqRecord) -> bytes | None:
    """The value of the dead letter's source record; OriginalUnavailable if it is gone."""
    source = record.source
    tp = TopicPartition(source.topic, source.partition)
    consumer.assign([tp])
    first = (await consumer.beginning_offsets([tp]))[tp]
    end = (await consumer.end_offsets([tp]))[tp]
    where = f"{source.topic}:{source.partition}@{source.offset}"
    if not first <= source.offset < end:
        raise OriginalUnavailable(f"{where} is no longer in Kafka (retention)")
    consumer.seek(tp, source.offset)
    while True:
        batches = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
        messages = batches.get(tp, [])
        if not messages:
            raise OriginalUnavailable(f"{where} could not be read")
        message = messages[0]
        if message.offset == source.offset:
            value: bytes | None = message.value
            return value
        if message.offset > source.offset:
            raise OriginalUnavailable(f"{where} is no longer in Kafka (compacted away)")


async def _whole_originals(
    settings: Settings, selected: list[DlqRecord]
) -> tuple[list[tuple[DlqRecord, bytes]], list[tuple[DlqRecord, str]]]:
    """Each selected dead letter with its whole original, or with why it cannot have it."""
    ready: list[tuple[DlqRecord, bytes]] = []
    refused: list[tuple[DlqRecord, str]] = []
    if not any(record.original_truncated for record in selected):
        return [(record, _original(record)) for record in selected], refused
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        for record in selected:
            if not record.original_truncated:
                ready.append((record, _original(record)))
                continue
            try:
                value = await _fetch_source(consumer, record)
                ready.append((record, original_from_source(record, value)))
            except OriginalUnavailable as why:
                refused.append((record, str(why)))
    finally:
        await consumer.stop()
    return ready, refused


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

    Re-driving is safe to repeat: events that count are deduplicated by event_id. Truncated
    originals are read back from their source records; exit status 1 when some could not be.
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
    ready, refused = await _whole_originals(settings, selected)
    for record, why in refused:
        print(
            f"cannot re-drive {record.dlq_id}: only the first {len(_original(record))} of its "
            f"{record.original_bytes} bytes were kept and {why}",
            file=sys.stderr,
        )
    if dry_run:
        for record, original in ready:
            print(f"would re-drive {record.dlq_id} ({record.reason.value}, {len(original)} bytes)")
        return 1 if refused else 0
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        max_request_size=16 * 1024 * 1024,
    )
    await producer.start()
    try:
        futures = [
            await producer.send(
                settings.calls_topic,
                original,
                key=(record.account_id or record.source.key or "").encode() or None,
                headers=[(REDRIVE_HEADER, record.dlq_id.encode())],
            )
            for record, original in ready
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    print(f"re-drove {len(ready)} dead letters to {settings.calls_topic}")
    if refused:
        print(f"{len(refused)} dead letters could not be re-driven (see above)", file=sys.stderr)
        return 1
    return 0
