"""The API's connections and configuration, created once per process (FastAPI lifespan)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import Request

from api.auth import TokenStore
from api.errors import ApiError
from api.openmeter.tokens import KIND as PORTAL_KIND
from api.openmeter.tokens import PortalTokens
from config.accounts import AccountConfig
from config.contracts import ContractBook, load_contracts
from config.settings import Settings
from config.topics import ensure_topics
from view.connection import Client, connect
from view.keys import ViewKeys
from view.reader import ViewReader


class AnswerCache:
    """Rendered usage answers (without freshness) by account, view version and query.

    Dashboards poll the same question; while the account's buckets have not changed, the
    answer is the same bytes. Bounded in bytes (an answer can be megabytes), oldest entries
    first out; an answer bigger than a quarter of the budget is not kept at all.
    """

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: dict[tuple[object, ...], tuple[bytes, int]] = {}

    @property
    def size_bytes(self) -> int:
        """What the kept answers (and their keys) take, roughly."""
        return self._bytes

    def get(self, key: tuple[object, ...]) -> bytes | None:
        """A cached answer."""
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def put(self, key: tuple[object, ...], body: bytes) -> None:
        """Remember an answer, dropping the oldest ones to stay within the budget."""
        size = len(body) + sum(len(str(part)) for part in key) + _ENTRY_OVERHEAD
        if size > self._max_bytes // 4:
            return
        known = self._entries.pop(key, None)
        if known is not None:
            self._bytes -= known[1]
        while self._entries and self._bytes + size > self._max_bytes:
            self._bytes -= self._entries.pop(next(iter(self._entries)))[1]
        self._entries[key] = (body, size)
        self._bytes += size


# Per-entry bookkeeping of a cached answer (dict slot, tuples, bytes header), roughly.
_ENTRY_OVERHEAD = 200


class StreamSlots:
    """Open streams (usage and access), per token and in all, against their limits (a process)."""

    def __init__(self, per_token: int, total: int) -> None:
        self.per_token = per_token
        self.total = total
        self._open: dict[str, int] = {}
        self._count = 0

    def acquire(self, token_name: str) -> str | None:
        """Take a slot; None when granted, else why not (the caller answers 429)."""
        if self._count >= self.total:
            return f"this server already serves {self.total} streams; retry later"
        if self._open.get(token_name, 0) >= self.per_token:
            return f"this token already has {self.per_token} open streams (usage and access)"
        self._open[token_name] = self._open.get(token_name, 0) + 1
        self._count += 1
        return None

    def release(self, token_name: str) -> None:
        """Give a slot back."""
        left = self._open.get(token_name, 0) - 1
        if left > 0:
            self._open[token_name] = left
        else:
            self._open.pop(token_name, None)
        self._count -= 1


__all__ = ("AnswerCache", "Services", "StreamSlots", "services")

logger = logging.getLogger(__name__)


@dataclass
class Services:
    """Shared clients of one API process."""

    settings: Settings
    redis: Client
    reader: ViewReader
    contracts: ContractBook
    tokens: TokenStore
    answers: AnswerCache
    streams: StreamSlots
    _producer: AIOKafkaProducer | None = None
    _producer_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _accounts: AccountConfig | None = None
    _accounts_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    portal: PortalTokens = field(default_factory=PortalTokens)
    # Large answers are computed here, off the event loop; two threads, so a burst of them
    # cannot take every core from the other requests.
    compute: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="answers")
    )
    stream_versions: dict[str, tuple[float, asyncio.Future[tuple[bytes, int]]]] = field(
        default_factory=dict
    )
    """The latest view version read per streamed account, shared by its streams."""

    @classmethod
    def create(cls, settings: Settings) -> Services:
        """Connections are opened lazily; nothing here blocks on Kafka or Redis.

        Raises :class:`config.settings.AdminTokenError` when the admin token configuration is
        unsafe for ``settings.api_host``: the API refuses to start.
        """
        client = connect(settings.redis_url, settings.redis_cluster_nodes)
        keys = ViewKeys(settings.view_prefix)
        created = cls(
            settings=settings,
            redis=client,
            reader=ViewReader(client, keys, settings.partitions, settings.view_cache_bytes),
            contracts=load_contracts(settings.contracts_file),
            answers=AnswerCache(settings.answer_cache_bytes),
            streams=StreamSlots(settings.sse_streams_per_token, settings.sse_streams_total),
            tokens=TokenStore.load(
                settings.admin_token_for(settings.api_host), settings.tokens_file
            ),
        )
        created.tokens.issued = created.portal.principal
        return created

    async def producer(self) -> AIOKafkaProducer:
        """A started idempotent producer (started on first use, so reads never wait for Kafka)."""
        async with self._producer_lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.kafka_bootstrap_servers,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=1,
                    request_timeout_ms=10_000,
                    max_request_size=4 * 1024 * 1024,
                )
                await producer.start()
                self._producer = producer
            return self._producer

    async def accounts(self) -> AccountConfig:
        """Contracts and webhooks, tailing the config topic (started on first use)."""
        if self._accounts is not None:
            return self._accounts
        async with self._accounts_lock:
            if self._accounts is None:
                accounts = AccountConfig(self.settings, self.contracts)
                accounts.listeners[PORTAL_KIND] = self.portal.apply
                try:
                    await ensure_topics(self.settings)
                    await accounts.start()
                except (KafkaError, OSError) as error:
                    await accounts.stop()
                    # The cause names internal addresses: it goes to the log, not to clients.
                    logger.warning("contracts cannot be read from Kafka: %s", error)
                    raise ApiError(
                        503,
                        "kafka_unavailable",
                        "Kafka is unreachable: contracts cannot be read; retry shortly",
                        {"Retry-After": "2"},
                    ) from None
                self._accounts = accounts
            return self._accounts

    async def time_zone_of(self, account_id: str) -> str:
        """The account's contract zone (the file's if Kafka cannot be reached), else UTC."""
        try:
            return (await self.accounts()).time_zone_of(account_id)
        except ApiError:
            return self.contracts.time_zone_of(account_id)

    async def close(self) -> None:
        """Close connections."""
        if self._accounts is not None:
            await self._accounts.stop()
        if self._producer is not None:
            await self._producer.stop()
        await self.redis.aclose()
        self.compute.shutdown(wait=False, cancel_futures=True)


async def services(request: Request) -> Services:
    """FastAPI dependency: this process's services (async: sync ones run in a thread pool)."""
    found: Services = request.app.state.services
    return found
