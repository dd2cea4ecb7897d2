"""What a worker runs beside its Faust agent: producer, Redis, progress and the view keeper."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from config.accounts import AccountConfig
from config.clock import now_ms
from config.contracts import load_contracts
from config.memory import release_free_heap
from config.settings import Settings
from core.freshness import Progress
from streams.deliverer import Deliverer
from streams.partitioner import account_partition
from streams.processor import Processor
from streams.viewkeeper import ViewKeeper
from view.connection import Client, connect
from view.keys import ViewKeys, as_text
from view.reader import ViewNotReady, ViewReader
from view.writer import ViewWriter

__all__ = ("WorkerRuntime",)

logger = logging.getLogger(__name__)


class WorkerRuntime:
    """Started lazily by the agent (before its first batch) and by rebalance callbacks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis: Client = connect(settings.redis_url, settings.redis_cluster_nodes)
        keys = ViewKeys(settings.view_prefix)
        self.writer = ViewWriter(self.redis, keys, settings.view_replica_wait_ms)
        # Reads of the view's history, for period totals longer than the state (no cache).
        self._history_reader = ViewReader(self.redis, keys, settings.partitions, cache_bytes=0)
        self.keeper = ViewKeeper(settings, self.redis, self.writer)
        self._producer: AIOKafkaProducer | None = None
        self._processor: Processor | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self.accounts: AccountConfig | None = None
        self.deliverer: Deliverer | None = None
        self._started = False
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start once; later calls return at once."""
        async with self._lock:
            if self._started:
                return
            # aiokafka clients bind to the running loop, so they are made here, not in __init__.
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                acks="all",
                enable_idempotence=True,
                linger_ms=2,
                max_batch_size=512 * 1024,
                max_request_size=8 * 1024 * 1024,
                request_timeout_ms=int(self.settings.kafka_request_timeout_seconds * 1000),
            )
            await self._producer.start()
            self._offsets = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers, enable_auto_commit=False
            )
            await self._offsets.start()
            # Contracts first: a batch must never be judged without the account's terms.
            self.accounts = AccountConfig(
                self.settings, load_contracts(self.settings.contracts_file)
            )
            await self.accounts.start()
            partitions = self.settings.partitions
            self._processor = Processor(
                self.settings,
                self._producer,
                self.writer,
                lambda account: account_partition(account, partitions),
                self._view_progress,
                self.accounts.terms_for,
                self._history,
            )
            self.deliverer = Deliverer(self.settings, self.accounts, self.writer)
            await self.deliverer.start()
            self._tasks = [
                asyncio.ensure_future(
                    self._every(self.settings.heartbeat_ms / 1000, self._heartbeat)
                ),
                asyncio.ensure_future(self._every(1.0, self.keeper.check)),
            ]
            self._started = True
            logger.info("creditflow worker ready")

    async def stop(self) -> None:
        """Stop background loops and clients."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.deliverer is not None:
            await self.deliverer.stop()
        if self.accounts is not None:
            await self.accounts.stop()
        if self._offsets is not None:
            await self._offsets.stop()
        if self._processor is not None:
            await self._processor.close()
        if self._producer is not None:
            await self._producer.stop()
        await self.redis.aclose()

    @property
    def processor(self) -> Processor:
        """The batch processor (exists once :meth:`start` ran)."""
        if self._processor is None:
            raise RuntimeError("worker runtime not started")
        return self._processor

    async def _view_progress(self, partition: int) -> Progress | None:
        try:
            line = await self.redis.hget(self.writer.keys.progress, str(partition))
        except RedisError:
            return None
        return None if line is None else Progress.decode(as_text(line))

    async def _history(self, account_id: str, start_ms: int, end_ms: int) -> int | None:
        """An account's micro-credits in a range, from the view (None: not complete now)."""
        if self.writer.has_pending:
            return None  # what this worker wrote may not all be in Redis yet
        try:
            usage = await self._history_reader.usage(account_id, [start_ms, end_ms])
        except (ViewNotReady, RedisError):
            return None
        return sum(days.between(start_ms, end_ms)[2] for days in usage.apps.values())

    async def _heartbeat(self) -> None:
        owned = sorted(self.processor.owned)
        if not owned:
            return
        checked = now_ms()
        tps = [TopicPartition(self.settings.calls_topic, p) for p in owned]
        assert self._offsets is not None
        ends = await self._offsets.end_offsets(tps)
        await self.processor.heartbeat(
            {tp.partition: offset for tp, offset in ends.items()}, checked
        )
        release_free_heap()

    @staticmethod
    async def _every(seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await job()
            except (KafkaError, RedisError, OSError) as error:
                logger.warning("background job failed: %s", error)
            except Exception:
                logger.exception("background job crashed")
            await asyncio.sleep(seconds)
