"""Account configuration shared by workers and API processes: contracts and webhook endpoints.

The compacted topic ``creditflow.config.v1`` is the source of truth at run time (key
``contract:{account}`` or ``webhooks:{account}``). ``config/contracts.yaml`` seeds it: a file
contract is published when the topic has none for the account or an older version. The admin
API publishes edits. Every process tails the topic, so a change takes effect without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from config.contracts import Contract, ContractBook, Plan, check_against_plans, to_terms
from config.settings import Settings
from config.topics import partitions_of
from core.billing import Terms

__all__ = (
    "AccountConfig",
    "Endpoint",
    "Webhooks",
    "contract_key",
    "publish_config",
    "webhooks_key",
)

logger = logging.getLogger(__name__)


class Endpoint(BaseModel):
    """A webhook endpoint: alerts are POSTed to ``url`` and signed with ``secret``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    url: str = Field(pattern=r"^https?://\S+$", max_length=2048)
    secret: str = Field(min_length=16, max_length=256)

    @field_validator("url")
    @classmethod
    def _has_host(cls, value: str) -> str:
        # Where it may point is the deliverer's policy (config.targets), which needs settings.
        try:
            parts = urlsplit(value)
            _ = parts.port
        except ValueError:
            raise ValueError("url is not a valid URL") from None
        if not parts.hostname:
            raise ValueError("url has no host")
        return value


class Webhooks(BaseModel):
    """An account's webhook endpoints."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoints: list[Endpoint] = Field(default_factory=list, max_length=10)


def contract_key(account_id: str) -> bytes:
    """Config-topic key of an account's contract."""
    return f"contract:{account_id}".encode()


def webhooks_key(account_id: str) -> bytes:
    """Config-topic key of an account's webhooks."""
    return f"webhooks:{account_id}".encode()


class AccountConfig:
    """Tails the config topic; answers ``terms_for``, ``contract_of`` and ``webhooks_of``."""

    def __init__(self, settings: Settings, book: ContractBook) -> None:
        self.settings = settings
        self.plans: dict[str, Plan] = dict(book.plans)
        self.default_time_zone = book.default_time_zone
        self._seed = dict(book.accounts)
        self.contracts: dict[str, Contract] = {}
        self.webhooks: dict[str, Webhooks] = {}
        self._terms: dict[str, Terms] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        # Other kinds of config records (``{kind}:{name}`` keys), applied by their owners.
        self.listeners: dict[str, Callable[[str, bytes | None], None]] = {}

    def terms_for(self, account_id: str) -> Terms | None:
        """Contract terms of an account (None without a contract)."""
        return self._terms.get(account_id)

    def time_zone_of(self, account_id: str) -> str:
        """The account's contract zone, else the default."""
        contract = self.contracts.get(account_id)
        return contract.time_zone if contract else self.default_time_zone

    async def start(self) -> None:
        """Read the topic to its end, seed it from the contracts file, then keep tailing it."""
        topic = self.settings.config_topic
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        await self._consumer.start()
        tps = [TopicPartition(topic, p) for p in await partitions_of(self.settings, topic)]
        self._consumer.assign(tps)
        starts = await self._consumer.beginning_offsets(tps)
        ends = await self._consumer.end_offsets(tps)
        for tp in tps:
            self._consumer.seek(tp, starts[tp])
        while [tp for tp in tps if await self._consumer.position(tp) < ends[tp]]:
            await self._poll()
        await self._seed_from_file()
        self._task = asyncio.ensure_future(self._tail())

    async def stop(self) -> None:
        """Stop tailing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _tail(self) -> None:
        while True:
            try:
                await self._poll()
            except Exception:
                logger.exception("reading the config topic failed; retrying")
                await asyncio.sleep(1)

    async def _poll(self) -> None:
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=500)
        for messages in batches.values():
            for message in messages:
                self._apply(message.key or b"", message.value)

    def _apply(self, key: bytes, value: bytes | None) -> None:
        kind, _, account_id = key.decode(errors="replace").partition(":")
        try:
            if kind == "contract":
                if value is None:
                    self.contracts.pop(account_id, None)
                    self._terms.pop(account_id, None)
                    return
                contract = Contract.model_validate_json(value)
                self.contracts[account_id] = contract
                self._terms[account_id] = to_terms(account_id, contract)
            elif kind == "webhooks":
                if value is None:
                    self.webhooks.pop(account_id, None)
                else:
                    self.webhooks[account_id] = Webhooks.model_validate_json(value)
            elif kind in self.listeners:
                self.listeners[kind](account_id, value)
        except ValidationError as error:
            logger.error("ignoring invalid config record %r: %s", key, error)
            return
        self._changed.set()

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10) -> bool:  # noqa: ASYNC109
        """Until ``condition`` holds for what this process has read (read-your-writes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return True

    async def _seed_from_file(self) -> None:
        stale = {
            account_id: contract
            for account_id, contract in self._seed.items()
            if account_id not in self.contracts
            or self.contracts[account_id].version < contract.version
        }
        if stale:
            await publish_config(
                self.settings,
                [(contract_key(a), c.model_dump_json().encode()) for a, c in stale.items()],
            )
            for account_id, contract in stale.items():
                self._apply(contract_key(account_id), contract.model_dump_json().encode())
            logger.info("seeded contracts from file: %s", sorted(stale))

    def validate(self, account_id: str, body: dict[str, Any]) -> Contract:
        """A contract from an admin request: schema, plan and maximum checks (ValueError)."""
        current = self.contracts.get(account_id)
        body = {**body, "version": (current.version if current else 0) + 1}
        contract = Contract.model_validate(body)
        check_against_plans(account_id, contract, self.plans)
        return contract


async def publish_config(settings: Settings, records: list[tuple[bytes, bytes | None]]) -> None:
    """Write config records (durably) to the config topic."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        futures = [
            await producer.send(settings.config_topic, value, key=key) for key, value in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
