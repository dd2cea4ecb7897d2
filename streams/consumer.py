"""Whole fetches of raw records for the processor, inside Faust's consumer: no event per record.

faust-streaming turns every fetched record into a message object, a conductor callback raced
against the flow-control event in new tasks, an event on the agent's queue, a stream step and
an acknowledgement (the profile is in docs/benchmarks.md): tens of microseconds per record,
before creditflow sees it. This module keeps what Faust is good at, the group membership,
partition assignment and rebalance callbacks of its aiokafka consumer thread, the seek to the
committed offsets after a rebalance, its commit loop, and replaces only the drain loop that
feeds the agents: each fetch becomes one list of :class:`core.partition.SourceRecord` for one
handler call, whatever its records hold (single events, batches, re-routed events).

Commit rule: the offset a partition may commit is the one after the last record of a fetch whose
handler call returned (the processor has then made it durable, module docstring of
``streams.processor``). A call that a rebalance overlapped is not counted: the rebalance seeks
every partition back to its committed offset, and the processor's fence skips what it had
applied. A call is never abandoned half done (its in-memory state would be ahead of its
store): a cancellation waits for it, and if it raises, the process exits before anything can
commit (a supervisor restarts it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, NoReturn, cast

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Transport
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP, ConsumerT
from mode import ServiceT

from core.partition import SourceRecord
from streams.records import REROUTED_FROM_HEADER

__all__ = ("FetchApp", "FetchConsumer", "FetchHandler", "source_records")

logger = logging.getLogger(__name__)

FetchHandler = Callable[[list[SourceRecord]], Awaitable[None]]
"""Processes one fetch; when it returns, every record given is durable."""

_EXIT_ON_FAILURE = 70


def source_records(records: Iterable[Any]) -> list[SourceRecord]:
    """The core's view of aiokafka records (a null value reads as empty bytes)."""
    out: list[SourceRecord] = []
    append = out.append
    for record in records:
        headers = record.headers
        origin = None
        if headers:  # only re-routed records carry one; most have none
            origin = next(
                (v.decode(errors="replace") for k, v in headers if k == REROUTED_FROM_HEADER and v),
                None,
            )
        append(
            SourceRecord(
                record.partition,
                record.offset,
                record.timestamp,
                record.key,
                record.value or b"",
                origin,
            )
        )
    return out


def _fail(error: BaseException) -> NoReturn:
    """Exit now, before the fetch can be committed.

    Processing raises only on a bug (bad input becomes dead letters); a supervisor restarts the
    worker, which replays the uncommitted records from the state log's fence.
    """
    logger.critical("aggregation failed; exiting before the fetch can be committed", exc_info=error)
    logging.shutdown()
    os._exit(_EXIT_ON_FAILURE)


class _FetchThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, with a shorter wait of a fetch request for new records."""

    def _create_worker_consumer(self, transport: Transport) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust fixes the broker-side wait at 1.5 s. aiokafka keeps one fetch in flight per
        # broker, for the partitions with nothing buffered: when those are idle, the request
        # holds back every other partition's new records that long (seen as 1.2-1.5 s freshness
        # outliers at 5,000 records/s). Set before the consumer starts, which reads it.
        consumer._fetch_max_wait_ms = cast(FetchConsumer, self.consumer).fetch_max_wait_ms
        return consumer


class FetchConsumer(AIOKafkaConsumer):
    """Faust's aiokafka consumer with a drain loop that hands whole fetches to a handler."""

    handler: FetchHandler | None = None
    fetch_max_wait_ms = 100
    """How long the broker may hold a fetch request while the partitions in it have no data."""

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _FetchThread(self, loop=self.loop, beacon=self.beacon)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._durable: dict[TP, int] = {}
        """Per partition, the next offset to read: everything before it is durable."""
        self._rebalances = 0
        self._since_commit = 0

    # ---------------------------------------------------------------- Faust's commit loop

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Any:
        # Faust's commit goes through these two: committable offsets come from finished
        # handler calls, not from per-message acknowledgements (there are none).
        return (tp for tp in self._durable if topics is None or tp in topics or tp.topic in topics)

    def _new_offset(self, tp: TP) -> int | None:
        return self._durable.get(tp)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """A handler call in progress no longer counts; revoked partitions' offsets go."""
        self._rebalances += 1
        await super().on_partitions_revoked(revoked)  # commits what is durable first
        for tp in revoked:
            self._durable.pop(tp, None)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        """A new assignment also voids a handler call in progress."""
        self._rebalances += 1
        await super().on_partitions_assigned(assigned, generation_id)

    # ---------------------------------------------------------------- the drain loop

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        """Fetch, hand each fetch to the handler, note what it made durable; until stopped.

        The next fetch is under way while the handler runs: the consumer thread reads it
        while the processor waits for Kafka and Redis.
        """
        consumer_stopped = cast(Any, self)._stopped.is_set
        fetcher_stopped = cast(Any, fetcher)._stopped.is_set
        fetch: asyncio.Future[tuple[Any, set[TP] | None]] | None = None
        since = 0
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                if fetch is None:
                    fetch, since = self._fetch(), self._rebalances
                fetched, active = await fetch
                fetch = None
                if not fetched or self.should_stop:
                    continue
                if not self.flow_active or self._rebalances != since:
                    # A rebalance began or ran since this fetch started, so its records may
                    # predate the rebalance's seek: read again from the committed offsets (a
                    # stopped flow waits for the rebalance to end first).
                    await self.perform_seek()
                    continue
                wanted = self._wanted(fetched, active)
                if wanted:
                    fetch, since = self._fetch(), self._rebalances
                    await self._hand(wanted)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            if fetch is not None:
                fetch.cancel()

    def _fetch(self) -> asyncio.Future[tuple[Any, set[TP] | None]]:
        return asyncio.ensure_future(self._wait_next_records(1.0))

    def _wanted(self, fetched: Mapping[TP, list[Any]], active: set[TP] | None) -> dict[TP, Any]:
        """The records of partitions still active, from their next unread offset on."""
        wanted: dict[TP, Any] = {}
        read = self._read_offset
        for tp, records in fetched.items():
            if not records or (
                active is not None and tp not in active and tp not in self._buffered_partitions
            ):
                continue
            start = read[tp]
            if start is not None and records[0].offset < start:
                records = [r for r in records if r.offset >= start]  # a fetch from before a seek
                if not records:
                    continue
            wanted[tp] = records
        return wanted

    async def _hand(self, wanted: dict[TP, Any]) -> None:
        if not wanted:
            return
        handler = self.handler
        assert handler is not None, "FetchConsumer.handler is set before the app starts"
        records = [record for batch in wanted.values() for record in source_records(batch)]
        rebalances = self._rebalances
        monitor = self.app.monitor
        now = time.monotonic()
        for tp in wanted:
            # Keeps Faust's livelock detector informed (it watches stream inbound times).
            monitor.stream_inbound_time[tp] = now
            monitor.track_tp_end_offset(tp, self.highwater(tp))
        work = asyncio.ensure_future(handler(records))
        interrupted = await _outcome(work)
        if work.cancelled():
            # Cancelled from inside (the processor's loads are cancelled when partitions go):
            # unless a rebalance seeks anyway, read the records again from the committed offsets.
            if self._rebalances == rebalances and not self.should_stop:
                await self.perform_seek()
        elif self._rebalances == rebalances:
            for tp, batch in wanted.items():
                self._durable[tp] = self._read_offset[tp] = batch[-1].offset + 1
            self._since_commit += len(records)
        if interrupted:
            raise asyncio.CancelledError
        commit_every = self._commit_every
        if commit_every is not None and self._since_commit >= commit_every:
            self._since_commit = 0
            await self.commit()


async def _outcome(work: asyncio.Future[None]) -> bool:
    """Wait for a handler call to end, through cancellations (True if there were any).

    Exits the process if the call raised: nothing may commit its records.
    """
    interrupted = False
    while not work.done():
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            # Stopping (unless the call itself was cancelled): it still finishes durably first.
            interrupted = interrupted or not work.cancelled()
        except Exception:  # noqa: S110  # examined below, once the call is over
            pass
    if not work.cancelled() and work.exception() is not None:
        _fail(cast(BaseException, work.exception()))
    return interrupted


class FetchApp(faust.App):
    """A Faust app whose consumer hands whole fetches to :attr:`handler` (no agents needed)."""

    handler: FetchHandler | None = None
    fetch_max_wait_ms = FetchConsumer.fetch_max_wait_ms
    starting: Callable[[], Awaitable[None]] | None = None
    """Awaited when the app starts, before its consumer joins the group (as agents are)."""

    async def on_start(self) -> None:
        """Start what the handler needs before any partition can be assigned."""
        await super().on_start()
        if self.starting is not None:
            await self.starting()

    def _new_consumer(self) -> ConsumerT:
        consumer = FetchConsumer(
            self.transport,
            callback=self.topics.on_message,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            loop=self.transport.loop,
        )
        consumer.handler = self.handler
        consumer.fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer
