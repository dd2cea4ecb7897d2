"""Valid events into the calls topic as batch records: the HTTP and OpenMeter ingests' way in."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.errors import KafkaError

from api.errors import ApiError
from api.services import Services
from core.events import MAX_BATCH_EVENTS, Event

logger = logging.getLogger(__name__)

__all__ = ("publish_events",)


_RECORD_BYTES = 512 * 1024


def _records(events: list[Event]) -> list[tuple[str, bytes]]:
    """Batch records of one account each, at most 1,000 events and ~512 KiB per record."""
    by_account: dict[str, list[bytes]] = {}
    for event in events:
        by_account.setdefault(event.account_id, []).append(event.raw)
    records = []
    for account_id, raws in by_account.items():
        chunk: list[bytes] = []
        size = 0
        for raw in raws:
            if chunk and (len(chunk) == MAX_BATCH_EVENTS or size + len(raw) > _RECORD_BYTES):
                records.append((account_id, b"[" + b",".join(chunk) + b"]"))
                chunk, size = [], 0
            chunk.append(raw)
            size += len(raw) + 1
        records.append((account_id, b"[" + b",".join(chunk) + b"]"))
    return records


async def publish_events(svc: Services, events: list[Event]) -> None:
    """Valid events into the calls topic as batch records; 503 while Kafka cannot take them."""
    await _publish(svc, _records(events))


async def _publish(svc: Services, records: list[tuple[str, bytes]]) -> None:
    try:
        producer = await svc.producer()
        futures = [
            await producer.send(svc.settings.calls_topic, value, key=account.encode())
            for account, value in records
        ]
        await asyncio.gather(*futures)
    except KafkaError as error:
        logger.warning("events could not be stored in Kafka: %s", error)
        raise ApiError(
            503,
            "kafka_unavailable",
            "Kafka is unreachable: events could not be stored; retry the request: "
            "events already stored are deduplicated by event_id",
            {"Retry-After": "1"},
        ) from None
