"""Reading topics from the beginning to their current end: state logs, buckets, the DLQ."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from config.settings import Settings

__all__ = ("replay",)


async def replay(
    settings: Settings,
    topic: str,
    partitions: Sequence[int],
    max_records: int = 20_000,
    start: int | None = None,
) -> AsyncIterator[list[Any]]:
    """Yield batches of records of ``partitions`` up to the end seen at the start.

    Reading begins at ``start`` (an offset, for every partition; default the beginning).
    Records appended after the start are not waited for; each partition's records come in
    offset order.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, partition) for partition in partitions]
        if not tps:
            return
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        # Explicit seeks: aiokafka 0.14's seek_to_beginning() after end_offsets() resolves to
        # the end offset, which would silently skip every record.
        starts = await consumer.beginning_offsets(tps)
        remaining = set()
        for tp in tps:
            first = starts[tp] if start is None else max(start, starts[tp])
            consumer.seek(tp, first)
            if first < ends[tp]:
                remaining.add(tp)
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=max_records)
            for tp, messages in batches.items():
                end = ends[tp]
                yield [message for message in messages if message.offset < end]
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
