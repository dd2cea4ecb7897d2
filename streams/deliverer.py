"""Webhook delivery of alerts: signed POSTs, retried with backoff and jitter, logged.

Each worker consumes its share of ``usage.alerts.v1`` (consumer group ``{group}-deliverer``).
For every alert and every endpoint of the account it POSTs the alert JSON with
``X-Creditflow-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` (a receiver
refuses stale times, so a captured delivery cannot be replayed later) and ``Idempotency-Key:
<alert_id>``, until a 2xx answer or the expiry. Redirects are never followed (a 3xx is a
failed attempt), and only addresses allowed by :mod:`config.targets` are connected to.
Every alert's document is written to the Redis view here too, whether the account has
endpoints or not (what the processor wrote with the run's days may have been lost to a crash).
Every attempt is recorded in the compacted ``creditflow.deliveries.v1`` (and the Redis
view), so a restarted worker skips what was delivered and resumes what was not, and so does a
worker that alert partitions move to (it reads the statuses again after each rebalance). An
alert's offset is committed only when all its deliveries are final. Delivery is at least
once; the idempotency key lets receivers drop the rare repeat after a crash between a POST and
its record.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from config.accounts import AccountConfig, Endpoint
from config.clock import now_ms
from config.settings import Settings
from config.targets import PublicResolver, TargetPolicy
from config.topics import partitions_of
from core.buckets import iso_utc, to_epoch_ms
from streams.replay import replay
from view import counters
from view.keys import alerts_key, deliveries_key, delivery_field
from view.writer import ViewWriter

__all__ = ("Deliverer", "backoff_seconds", "sign", "webhook_session")

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Creditflow-Signature"
_RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
"""Pauses between tries to record a status in Kafka or a document in Redis (then the last)."""


def _retry_pause(tries: int) -> float:
    """The pause after ``tries`` failed tries (counted from 0) of a record or a document."""
    return _RETRY_SECONDS[min(tries, len(_RETRY_SECONDS) - 1)]


_STOP_COMMIT_SECONDS = 5.0


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value of a body sent at ``timestamp`` (unix seconds)."""
    signed = f"{timestamp}.".encode() + body
    return f"t={timestamp},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def webhook_session(settings: Settings) -> aiohttp.ClientSession:
    """The HTTP client of deliveries: DNS answers filtered by the target policy, a timeout."""
    resolver = PublicResolver(TargetPolicy(settings.webhook_networks))
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=resolver),
        timeout=aiohttp.ClientTimeout(total=settings.webhook_timeout_seconds),
    )


def backoff_seconds(attempt: int, rng: random.Random) -> float:
    """Exponential backoff with jitter: between half and all of 1, 2, 4 ... s, at most 5 min."""
    return rng.uniform(0.5, 1.0) * min(300.0, 2.0 ** (attempt - 1))


@dataclass
class _Status:
    alert_id: str
    account_id: str
    endpoint_id: str
    url: str
    state: str = "pending"  # pending | delivered | expired
    attempts: int = 0
    first_attempt_ms: int = 0
    last_attempt_ms: int | None = None
    last_status: int | None = None
    last_error: str | None = None
    delivered_ms: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    recorded: bool = False
    """Whether the deliveries topic has this state (a delivery cancelled by a rebalance may
    have reached a final state and not recorded it)."""

    @property
    def key(self) -> str:
        return delivery_field(self.alert_id, self.endpoint_id)

    @property
    def final(self) -> bool:
        return self.state != "pending"

    def supersedes(self, known: _Status | None) -> bool:
        """Whether this recorded status replaces ``known``, the one a worker holds.

        A worker that takes over an alert's partition may hold an older status of its
        deliveries (from its start, or from its own earlier ownership): the record of another
        worker that went further, final or with more attempts, wins. A status held final
        stays, as does one this worker's own attempts have brought as far.
        """
        if known is None:
            return True
        if known.final:
            return False
        return self.final or self.attempts > known.attempts

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> _Status:
        """A status as recorded, so a restarted worker resumes it (deadline included)."""
        status = cls(body["alert_id"], body["account_id"], body["endpoint_id"], body["url"])
        status.state, status.attempts = body["state"], body["attempts"]
        status.first_attempt_ms = _ms(body.get("first_attempt_at")) or now_ms()
        status.last_attempt_ms = _ms(body.get("last_attempt_at"))
        status.delivered_ms = _ms(body.get("delivered_at"))
        status.last_status, status.last_error = body.get("last_status"), body.get("last_error")
        status.history = list(body.get("history") or [])
        status.recorded = True
        return status

    def to_wire(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "account_id": self.account_id,
            "endpoint_id": self.endpoint_id,
            "url": self.url,
            "state": self.state,
            "attempts": self.attempts,
            "first_attempt_at": iso_utc(self.first_attempt_ms) if self.first_attempt_ms else None,
            "last_attempt_at": iso_utc(self.last_attempt_ms) if self.last_attempt_ms else None,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "delivered_at": iso_utc(self.delivered_ms) if self.delivered_ms else None,
            "history": self.history[-10:],
        }


def _ms(text: str | None) -> int | None:
    return None if not text else to_epoch_ms(datetime.fromisoformat(text))


class Deliverer:
    """Consumes alerts and delivers them to the account's webhook endpoints."""

    def __init__(self, settings: Settings, accounts: AccountConfig, writer: ViewWriter) -> None:
        self.settings = settings
        self.accounts = accounts
        self.writer = writer
        self._statuses: dict[str, _Status] = {}
        self._rng = random.Random()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._session: aiohttp.ClientSession | None = None
        self._policy = TargetPolicy(settings.webhook_networks)
        self._task: asyncio.Task[None] | None = None
        self._inflight: dict[TopicPartition, dict[int, asyncio.Task[None]]] = {}
        self._rebalances = 0
        self._read_at = 0
        """The rebalance count when the statuses were last read (see :meth:`hand_over`)."""

    async def start(self) -> None:
        """Load past delivery statuses, then start consuming alerts.

        The statuses are read again after each rebalance (:meth:`hand_over`).
        """
        await self._load_statuses()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=0,
        )
        await self._producer.start()
        self._session = webhook_session(self.settings)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=f"{self.settings.group_id}-deliverer",
            # Static membership, like the worker's own group: a restarted worker gets its
            # share of alerts back at once instead of after the session timeout.
            group_instance_id=f"{self.settings.instance_id}-deliverer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=20,
            session_timeout_ms=int(self.settings.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(max(1.0, self.settings.session_timeout_seconds / 6) * 1000),
        )
        self._consumer.subscribe([self.settings.alerts_topic], listener=_Handover(self))
        await self._consumer.start()
        self._task = asyncio.ensure_future(self._run())

    async def _load_statuses(self) -> None:
        """Read the delivery statuses recorded so far, keeping what this worker knows better."""
        topic = self.settings.deliveries_topic
        async for batch in replay(self.settings, topic, await partitions_of(self.settings, topic)):
            for message in batch:
                if message.value is not None:
                    recorded = _Status.from_wire(json.loads(message.value))
                    if recorded.supersedes(self._statuses.get(recorded.key)):
                        self._statuses[recorded.key] = recorded

    async def hand_over(self) -> None:
        """Before alert partitions move: commit what is final, stop what is in flight.

        The statuses are then read again before the next alerts are delivered. A delivery left
        running would go on beside the one its next owner starts (this worker's again,
        perhaps). Another worker may have recorded statuses since this one read them: without
        reading them again, it POSTed delivered alerts once more and rewrote their status. The
        consume loop reads them, not the rebalance listener: aiokafka hands out the new
        assignment's records before the listener has returned, and the group's heartbeats
        wait for it.
        """
        self._rebalances += 1
        try:
            await self._commit_finished()
        finally:
            for tasks in self._inflight.values():
                for task in tasks.values():
                    task.cancel()
            self._inflight.clear()

    async def stop(self) -> None:
        """Stop consuming; unfinished deliveries resume in the next owner."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            # What is final is committed for the next owner, unless Kafka is away: a stop
            # must not wait for it (the next owner then reads those alerts again and finds
            # their deliveries final).
            with contextlib.suppress(KafkaError, TimeoutError):
                await asyncio.wait_for(self.hand_over(), _STOP_COMMIT_SECONDS)
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        assert self._consumer is not None
        batches: dict[TopicPartition, list[Any]] = {}
        while True:
            try:
                if not batches:
                    batches = await self._consumer.getmany(timeout_ms=500)
                # Kept across a failed read of the statuses: the consumer's position is past
                # these alerts already.
                await self._statuses_read()
                self._start(batches)
                batches = {}
                await self._commit_finished()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("alert consumption failed; retrying")
                await asyncio.sleep(1)

    async def _statuses_read(self) -> None:
        """Read the recorded statuses again if a rebalance came since they were last read."""
        rebalances = self._rebalances
        if self._read_at != rebalances:
            await self._load_statuses()
            self._read_at = rebalances

    def _start(self, batches: dict[TopicPartition, list[Any]]) -> None:
        """A delivery task per alert; none for an alert that has one already."""
        for tp, messages in batches.items():
            tasks = self._inflight.setdefault(tp, {})
            for message in messages:
                # Records fetched before a rebalance and fetched again after it: one task.
                if message.offset not in tasks:
                    tasks[message.offset] = asyncio.ensure_future(
                        self._deliver_alert(message.value)
                    )

    async def _commit_finished(self) -> None:
        """Commit, per partition, up to the first alert whose deliveries are not final."""
        assert self._consumer is not None
        offsets = {}
        assignment = self._consumer.assignment()
        for tp, tasks in list(self._inflight.items()):
            if tp not in assignment:
                for task in tasks.values():
                    task.cancel()
                del self._inflight[tp]
                continue
            done = sorted(offset for offset, task in tasks.items() if task.done())
            pending = [offset for offset, task in tasks.items() if not task.done()]
            limit = min(pending) if pending else None
            committable = [offset for offset in done if limit is None or offset < limit]
            if committable:
                offsets[tp] = committable[-1] + 1
                for offset in committable:
                    del tasks[offset]
        if offsets:
            await self._consumer.commit(offsets)

    async def _deliver_alert(self, value: bytes | None) -> None:
        if value is None:
            return
        alert = json.loads(value)
        webhooks = self.accounts.webhooks.get(alert["account_id"])
        endpoints = webhooks.endpoints if webhooks is not None else []
        # Together: a POST does not wait for Redis (it may be down), and the alert's offset
        # waits for both.
        await asyncio.gather(
            self._show(alert, value), *(self._deliver(alert, value, e) for e in endpoints)
        )

    async def _show(self, alert: dict[str, Any], body: bytes) -> None:
        """Write the alert's document to the view, retrying until Redis takes it.

        The processor writes it with the run's days, but a worker killed between its state
        commit and that write leaves the alert only here, in the topic. The alert's offset is
        committed only after this returns, so a crash before then replays the alert.
        """
        docs = [(alerts_key(alert["account_id"]), alert["alert_id"], body)]
        tries = 0
        while not await self.writer.write_docs(docs):
            docs = []  # pending in the writer now: a retry must not bring back an older body
            await asyncio.sleep(_retry_pause(tries))
            tries += 1

    async def _deliver(self, alert: dict[str, Any], body: bytes, endpoint: Endpoint) -> None:
        key = delivery_field(alert["alert_id"], endpoint.id)
        status = self._statuses.get(key)
        if status is not None and status.final:
            if not status.recorded:
                await self._record(status, counted=False)
            return
        if status is None:
            status = _Status(alert["alert_id"], alert["account_id"], endpoint.id, endpoint.url)
            status.first_attempt_ms = now_ms()
            self._statuses[key] = status
        elif status.last_attempt_ms is not None:
            # Resumed (a restart, a rebalance): its next attempt comes when its backoff says.
            due_ms = status.last_attempt_ms + backoff_seconds(status.attempts, self._rng) * 1000
            await asyncio.sleep(max(0.0, due_ms - now_ms()) / 1000)
        deadline = status.first_attempt_ms + self.settings.webhook_expiry_seconds * 1000
        while not status.final:
            await self._attempt(status, body, endpoint)
            if status.state == "pending" and now_ms() >= deadline:
                status.state = "expired"
            await self._record(status)
            if not status.final:
                await asyncio.sleep(backoff_seconds(status.attempts, self._rng))

    async def _attempt(self, status: _Status, body: bytes, endpoint: Endpoint) -> None:
        assert self._session is not None
        status.attempts += 1
        status.last_attempt_ms = now_ms()
        status.recorded = False
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "creditflow-webhooks/1",
            SIGNATURE_HEADER: sign(endpoint.secret, body, status.last_attempt_ms // 1000),
            "Idempotency-Key": status.alert_id,
            "X-Creditflow-Attempt": str(status.attempts),
        }
        # Literal IP hosts are not resolved, so the resolver's policy would not see them.
        refusal = self._policy.url_refusal(endpoint.url)
        if refusal is not None:
            status.last_status, status.last_error = None, f"refused: {refusal}"
        else:
            await self._post(status, body, endpoint.url, headers)
        status.history.append(
            {
                "at": iso_utc(status.last_attempt_ms),
                "status": status.last_status,
                "error": status.last_error,
            }
        )

    async def _post(self, status: _Status, body: bytes, url: str, headers: dict[str, str]) -> None:
        assert self._session is not None
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status.last_status, status.last_error = response.status, None
                if 200 <= response.status < 300:
                    status.state, status.delivered_ms = "delivered", now_ms()
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            status.last_status = None
            status.last_error = f"{type(error).__name__}: {str(error)[:300]}"

    async def _record(self, status: _Status, counted: bool = True) -> None:
        """Record a status in the view and the deliveries topic.

        ``counted``: in the counters too; not for a final state recorded late, counted when
        it was reached.
        """
        body = json.dumps(status.to_wire()).encode()
        metrics = {}
        if counted:
            result = "ok" if status.state == "delivered" else "failed"
            metrics[counters.delivery_attempts(result)] = 1
            if status.final:
                metrics[counters.deliveries(status.state)] = 1
        await self.writer.write(
            (), metrics=metrics, docs=[(deliveries_key(status.account_id), status.key, body)]
        )
        if self._producer is None:
            return
        # A pending status is recorded again by the next attempt; a final one must be in the
        # topic before this delivery ends and the alert's offset can commit, since restarts and
        # rebuilds read it there, so it is retried until Kafka takes it.
        last = len(_RETRY_SECONDS) - 1
        tries = 0
        while True:
            try:
                await self._producer.send_and_wait(
                    self.settings.deliveries_topic, body, key=status.key.encode()
                )
                status.recorded = True
                return
            except Exception as error:
                log = logger.error if tries >= last else logger.warning
                log("recording delivery %s failed: %s", status.key, error)
                if tries == last and not status.final:
                    return
                await asyncio.sleep(_retry_pause(tries))
                tries += 1


class _Handover(ConsumerRebalanceListener):  # type: ignore[misc]
    """The deliverer's part in a rebalance of alert partitions: :meth:`Deliverer.hand_over`."""

    def __init__(self, deliverer: Deliverer) -> None:
        self._deliverer = deliverer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._deliverer.hand_over()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Nothing here: the consume loop reads the statuses before the next deliveries."""
