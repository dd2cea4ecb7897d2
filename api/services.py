"""The API's connections and configuration, created once per process (FastAPI lifespan)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import Request

from api.auth import TokenStore
from api.errors import ApiError
from api.openmeter.tokens import KIND as PORTAL_KIND
from api.openmeter.tokens import PortalTokens
from config.contracts import ContractBook, load_contracts
from config.settings import Settings
from streams.accounts import AccountConfig
from streams.topics import ensure_topics
from view.reader import ViewReader


class AnswerCache:
    """Rendered usage answers (without freshness) by account, view version and query.

    Dashboards poll the same question; while the account's buckets have not changed, the
    answer is the same bytes. Bounded, oldest entries first out.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._entries: dict[tuple[object, ...], bytes] = {}

    def get(self, key: tuple[object, ...]) -> bytes | None:
        """A cached answer."""
        return self._entries.get(key)

    def put(self, key: tuple[object, ...], body: bytes) -> None:
        """Remember an answer."""
        if len(self._entries) >= self._size:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = body


__all__ = ("Services", "services")

logger = logging.getLogger(__name__)


@dataclass
class Services:
    """Shared clients of one API process."""

    settings: Settings
    redis: aioredis.Redis
    reader: ViewReader
    contracts: ContractBook
    tokens: TokenStore
    _producer: AIOKafkaProducer | None = None
    _producer_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _accounts: AccountConfig | None = None
    _accounts_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    answers: AnswerCache = field(default_factory=AnswerCache)
    portal: PortalTokens = field(default_factory=PortalTokens)

    @classmethod
    def create(cls, settings: Settings) -> Services:
        """Connections are opened lazily; nothing here blocks on Kafka or Redis."""
        client = aioredis.Redis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=2
        )
        created = cls(
            settings=settings,
            redis=client,
            reader=ViewReader(client, settings.partitions),
            contracts=load_contracts(settings.contracts_file),
            tokens=TokenStore.load(settings.effective_admin_token, settings.tokens_file),
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
                    raise ApiError(
                        503, "kafka_unavailable", f"contracts cannot be read: {error}"
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


async def services(request: Request) -> Services:
    """FastAPI dependency: this process's services (async: sync ones run in a thread pool)."""
    found: Services = request.app.state.services
    return found
