"""The Faust application: one agent that feeds batches of input records to the processor.

Faust consumes, balances partitions across workers and acknowledges offsets; creditflow's own
state log (not Faust tables, whose windows close by wall clock and whose changelog is not atomic
with offsets) carries the aggregation. Acknowledging only after the batch's state delta is in
Kafka keeps the committed offset at or below the state's fence.

Faust's ``take_events`` acknowledges a batch whenever the loop leaves it, even by an exception
or a cancellation. So a batch is never abandoned half done: on shutdown it is finished first,
and if it fails the process exits at once, before anything can acknowledge it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from typing import Any, NoReturn, cast

import faust
from faust.types import TP

from config.settings import Settings
from core.partition import SourceRecord
from streams.records import REROUTED_FROM_HEADER
from streams.runtime import WorkerRuntime

__all__ = ("create_app", "to_source_record")

logger = logging.getLogger(__name__)


_EXIT_ON_FAILURE = 70


def to_source_record(event: Any) -> SourceRecord:
    """The core's view of a Faust event's Kafka message (a null value reads as empty bytes)."""
    message = event.message
    headers = message.headers or []
    if isinstance(headers, dict):
        headers = list(headers.items())
    origin = next(
        (v.decode(errors="replace") for k, v in headers if k == REROUTED_FROM_HEADER and v),
        None,
    )
    return SourceRecord(
        message.partition,
        message.offset,
        round(message.timestamp * 1000),
        message.key,
        message.value or b"",
        origin,
    )


def _fail(error: BaseException) -> NoReturn:
    """Exit now, before the batch is acknowledged.

    Processing raises only on a bug (bad input becomes dead letters); a supervisor restarts the
    worker, which replays the unacknowledged batch from the state log's fence.
    """
    logger.critical(
        "aggregation failed; exiting before the batch can be acknowledged", exc_info=error
    )
    logging.shutdown()
    os._exit(_EXIT_ON_FAILURE)


async def _process(runtime: WorkerRuntime, events: Sequence[Any]) -> None:
    work = asyncio.ensure_future(
        runtime.processor.process([to_source_record(event) for event in events])
    )
    try:
        await asyncio.shield(work)
    except asyncio.CancelledError:
        # Shutting down mid-batch: finish it durably, since leaving the loop acknowledges it.
        while not work.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(work)
        if work.exception() is not None:
            _fail(cast(BaseException, work.exception()))
        raise
    except Exception as error:
        _fail(error)


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
        # Faust's producer sends nothing here (no tables, no sinks, no leader topic), but its
        # 20-minute default would let a request to a dead broker hang that long.
        producer_request_timeout=settings.kafka_request_timeout_seconds,
        broker_request_timeout=max(
            settings.kafka_request_timeout_seconds, settings.session_timeout_seconds
        ),
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_seconds / 6),
        broker_rebalance_timeout=settings.rebalance_timeout_seconds,
        consumer_group_instance_id=settings.instance_id,
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
        """Feed batches of input records to the processor."""
        await runtime.start()
        async for events in cast(faust.Stream[bytes], stream).take_events(
            settings.batch_max_records, within=settings.batch_window_ms / 1000
        ):
            await _process(runtime, events)

    # mode's SignalHandlerT union rejects any async handler under mypy, hence the ignores.
    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        assigned: set[TP] = args[0] if args else kwargs["assigned"]
        await runtime.start()
        mine = [tp.partition for tp in assigned if tp.topic == settings.calls_topic]
        await runtime.processor.revoke(set(runtime.processor.owned) - set(mine))
        runtime.processor.assign(mine)
        logger.info("assigned partitions %s", sorted(mine))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        revoked: set[TP] = args[0] if args else kwargs["revoked"]
        lost = [tp.partition for tp in revoked if tp.topic == settings.calls_topic]
        await runtime.processor.revoke(lost)

    return app, runtime
