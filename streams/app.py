"""The Faust application: its consumer hands whole fetches of input records to the processor.

Faust consumes, balances partitions across workers and commits offsets; creditflow's own
state log (not Faust tables, whose windows close by wall clock and whose changelog is not atomic
with offsets) carries the aggregation. There is no agent: an agent's stream makes an event per
record, which cost more than the aggregation itself; ``streams.consumer`` feeds the processor
each fetch whole and commits only offsets the processor has made durable, so the committed
offset stays at or below the state's fence.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.types import TP

from config.settings import Settings
from core.partition import SourceRecord
from streams.consumer import FetchApp
from streams.runtime import WorkerRuntime

__all__ = ("create_app",)

logger = logging.getLogger(__name__)


def create_app(settings: Settings) -> tuple[faust.App, WorkerRuntime]:
    """A Faust app wired to a fresh :class:`WorkerRuntime`."""
    faust_dir = settings.data_dir / settings.group_id / "faust"
    faust_dir.mkdir(parents=True, exist_ok=True)
    app = FetchApp(
        settings.group_id,
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        store="memory://",
        # Faust makes a directory for its own tables (this app has none); kept beside the
        # partition stores rather than in the working directory. Faust formats the path
        # (``{conf.name}``), so braces of the real path are escaped.
        datadir=str(faust_dir).replace("{", "{{").replace("}", "}}"),
        web_enabled=False,
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=settings.batch_max_records,
        broker_commit_interval=settings.commit_interval_seconds,
        broker_max_poll_records=settings.batch_max_records,
        consumer_max_fetch_size=settings.fetch_partition_bytes,
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
    # What an agent iterating the topic would do: the conductor subscribes to it.
    app.topics.add(calls)

    async def handle(records: list[SourceRecord]) -> None:
        await runtime.start()
        await runtime.processor.process(records)

    app.handler = handle
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    app.starting = runtime.start

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
