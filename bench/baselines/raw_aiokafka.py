"""Baseline: a plain aiokafka consumer that only parses the JSON of every record."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import msgspec
from aiokafka import AIOKafkaConsumer


async def main(topic: str, events: int) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        group_id=topic + ".raw-baseline",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    decode = msgspec.json.Decoder().decode
    seen = 0
    first = 0.0
    while seen < events:
        batches = await consumer.getmany(timeout_ms=500, max_records=5000)
        if batches and not first:
            first = time.monotonic()
        for messages in batches.values():
            for message in messages:
                value = decode(message.value)
                seen += len(value) if isinstance(value, list) else 1
    elapsed = time.monotonic() - first
    await consumer.stop()
    print(json.dumps({"events": seen, "seconds": elapsed, "rate": seen / elapsed}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
