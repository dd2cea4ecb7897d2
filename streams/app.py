"""The Faust application: one agent that feeds batches of input records to the processor.

Faust consumes, balances partitions across workers and acknowledges offsets; creditflow's own
state log (not Faust tables, whose windows close by wall clock and whose changelog is not atomic
with offsets) carries the aggregation. Acknowledging only after the batch's state delta is in
Kafka keeps the committed offset at or below the state's fence.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import faust
from faust.types import TP

from config.settings import Settings
from core.partition import SourceRecord
from streams.records import REROUTED_FROM_HEADER
from streams.runtime import WorkerRuntime

__all__ = ("create_app", "to_source_record")

logger = logging.getLogger(__name__)


def to_source_record(event: Any) -> SourceRecord:
    """The core's view of a Faust event's Kafka message."""
    message = event.message
    headers = message.headers or []
    if isinstance(headers, dict):
        headers = list(headers.items())
    origin = next((v.decode() for k, v in headers if k == REROUTED_FROM_HEADER), None)
    return SourceRecord(
        message.partition,
        message.offset,
        round(message.timestamp * 1000),
        message.key,
        message.value,
        origin,
    )


def create_app(settings: Settings) -> tuple[faust.App, WorkerRuntime]:
    """A Faust app wired to a fresh :class:`WorkerRuntime`."""
    app = faust.App(
        settings.group_id,
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        store="memory://",
        web_enabled=False,
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=max(4096, settings.batch_max_records * 2),
        broker_commit_every=settings.batch_max_records,
        broker_max_poll_records=settings.batch_max_records,
        producer_acks=-1,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_seconds / 6),
        broker_rebalance_timeout=settings.rebalance_timeout_seconds,
    )
    runtime = WorkerRuntime(settings)
    calls = app.topic(
        settings.calls_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )

    @app.agent(calls, name="aggregate")
    async def aggregate(stream: faust.StreamT[bytes]) -> None:
        await runtime.start()
        try:
            async for events in cast(faust.Stream[bytes], stream).take_events(
                settings.batch_max_records, within=settings.batch_window_ms / 1000
            ):
                await runtime.processor.process([to_source_record(event) for event in events])
        except Exception as error:
            # A bug, not bad input (input never raises). Stop the whole worker so a supervisor
            # restarts it, instead of a live process whose agent no longer consumes.
            logger.critical("aggregation agent failed; stopping the worker", exc_info=error)
            await app.crash(error)
            raise

    # mode's SignalHandlerT union rejects any async handler under mypy, hence the ignores.
    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        assigned: set[TP] = args[0] if args else kwargs["assigned"]
        await runtime.start()
        mine = [tp.partition for tp in assigned if tp.topic == settings.calls_topic]
        runtime.processor.revoke(set(runtime.processor.owned) - set(mine))
        runtime.processor.assign(mine)
        logger.info("assigned partitions %s", sorted(mine))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        revoked: set[TP] = args[0] if args else kwargs["revoked"]
        lost = [tp.partition for tp in revoked if tp.topic == settings.calls_topic]
        runtime.processor.revoke(lost)

    return app, runtime
