"""Real-stack test harness: Kafka and Redis from scripts/stack, workers as real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from api.app import create_app
from config.settings import Settings
from view.connection import Client, connect
from view.epoch import ViewEpoch
from view.keys import ViewKeys

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
PROCESS_LOGS: list[Path] = []
"""The log of every worker and API process the tests started, in order (shown when a test fails)."""
ADMIN_TOKEN = "test-admin-token"
# The installed default holds no contracts; the suite runs with the demo's accounts, loaded
# explicitly (a test that needs others sets CREDITFLOW_CONTRACTS_FILE in its namespace).
DEMO_CONTRACTS = ROOT / "scripts" / "demo-contracts.yaml"
# The stack's Redis, without a database number (each namespace takes its own database); set
# REDIS_URL to run the suite against a stack on other ports.
REDIS_BASE = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
# The stack's Redis Cluster (`scripts/stack up rcluster`): six nodes from REDIS_CLUSTER_PORT.
# It has no database numbers: namespaces on it are kept apart by their view key prefix.
REDIS_CLUSTER_PORT = int(os.environ.get("REDIS_CLUSTER_PORT", "7000"))
REDIS_CLUSTER_NODES = ",".join(f"127.0.0.1:{REDIS_CLUSTER_PORT + i}" for i in range(6))
BACKENDS = ("single", "cluster")
"""Where a namespace keeps its view: one Redis server, or the Redis Cluster."""

T = TypeVar("T")


def stack(*args: str, env: dict[str, str] | None = None) -> str:
    """Run scripts/stack (idempotent start of Kafka/Redis, stop/start for fault tests).

    ``env`` adds to this process's environment (the cluster's addresses, for instance); the
    script's standard output is returned (``status`` lines).
    """
    return subprocess.run(
        [str(ROOT / "scripts" / "stack"), *args],
        check=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        text=True,
    ).stdout


@dataclass
class Namespace:
    """Topics, group and view (Redis database or cluster, key prefix) of one test namespace."""

    name: str
    partitions: int = 4
    redis_db: int = 15
    extra: dict[str, str] = field(default_factory=dict)
    backend: str = "single"

    @property
    def view_prefix(self) -> str:
        return f"t-{self.name}"

    @property
    def env(self) -> dict[str, str]:
        prefix = f"t-{self.name}."
        return {
            "KAFKA_BOOTSTRAP_SERVERS": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            "REDIS_URL": f"{REDIS_BASE}/{self.redis_db}",
            "REDIS_CLUSTER_NODES": REDIS_CLUSTER_NODES if self.backend == "cluster" else "",
            "CREDITFLOW_VIEW_PREFIX": self.view_prefix,
            "CREDITFLOW_GROUP_ID": f"creditflow-{self.name}",
            "CREDITFLOW_PARTITIONS": str(self.partitions),
            "CREDITFLOW_CALLS_TOPIC": prefix + "usage.calls.v1",
            "CREDITFLOW_DLQ_TOPIC": prefix + "usage.calls.dlq.v1",
            "CREDITFLOW_BUCKETS_TOPIC": prefix + "usage.buckets.v1",
            "CREDITFLOW_ALERTS_TOPIC": prefix + "usage.alerts.v1",
            "CREDITFLOW_STATE_TOPIC": prefix + "creditflow.state.v1",
            "CREDITFLOW_CONFIG_TOPIC": prefix + "creditflow.config.v1",
            "CREDITFLOW_DELIVERIES_TOPIC": prefix + "creditflow.deliveries.v1",
            "CREDITFLOW_ADMIN_TOKEN": ADMIN_TOKEN,
            "CREDITFLOW_LOG_LEVEL": "info",
            "CREDITFLOW_CONTRACTS_FILE": str(DEMO_CONTRACTS),
            **self.extra,
        }

    def settings(self) -> Settings:
        saved = dict(os.environ)
        try:
            os.environ.update(self.env)
            return Settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def view_client(self) -> Client:
        """A client of the namespace's view (single server or cluster)."""
        return connect(self.env["REDIS_URL"], self.env["REDIS_CLUSTER_NODES"])

    def view_keys(self) -> ViewKeys:
        return ViewKeys(self.view_prefix)


_next_db = iter(range(1, 10**6))


def new_env(label: str, backend: str = "single", **kwargs: Any) -> Namespace:
    """A fresh namespace: new topics, new consumer group, a view of its own.

    On one server the view gets an emptied database; on the cluster, a fresh key prefix.
    """
    db = next(_next_db) % 15 + 1
    if backend == "single":
        redis.Redis.from_url(f"{REDIS_BASE}/{db}").flushdb()
    name = f"{label}-{backend[0]}-{uuid.uuid4().hex[:8]}"
    return Namespace(name, redis_db=db, backend=backend, **kwargs)


async def wipe_view(namespace: Namespace) -> int:
    """Delete every key of the namespace's view, as a Redis that lost its data; the count."""
    client = namespace.view_client()
    try:
        if namespace.backend == "single":
            count = int(await client.dbsize())
            await client.flushdb()
            return count
        keys = [key async for key in client.scan_iter(match=f"{namespace.view_prefix}:*")]
        for start in range(0, len(keys), 1000):
            await client.unlink(*keys[start : start + 1000])  # split per slot by the client
        return len(keys)
    finally:
        await client.aclose()


class ApiProcess:
    """A real `creditflow api` server (for what in-process ASGI cannot do, like endless SSE)."""

    def __init__(self, env: Namespace) -> None:
        self.env = env
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        ARTIFACTS.mkdir(exist_ok=True)
        self.log = ARTIFACTS / f"{env.name}-api-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ApiProcess:
        PROCESS_LOGS.append(self.log)
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "creditflow"), "api", "--port", str(self.port)],
            env={**os.environ, **self.env.env},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        return self

    async def ready(self) -> ApiProcess:
        async def listening() -> bool:
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(self.url + "/healthz")).status_code in (200, 503)
            except httpx.HTTPError:
                return False

        await wait_until(listening, timeout=30)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(15)


class WorkerProcess:
    """A `creditflow worker` subprocess with its own log file.

    Its local state lives in a directory named after its label, so a worker restarted under
    the same label finds the store the previous one left (a restart on the same machine) and
    one under a new label starts without any (a new machine: it restores from the state log).
    """

    def __init__(self, env: Namespace, label: str = "worker") -> None:
        self.env = env
        ARTIFACTS.mkdir(exist_ok=True)
        self.log = ARTIFACTS / f"{env.name}-{label}-{uuid.uuid4().hex[:4]}.log"
        self.data_dir = ARTIFACTS / "data" / f"{env.name}-{label}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {**os.environ, **self.env.env, "CREDITFLOW_DATA_DIR": str(self.data_dir)}
        handle = self.log.open("ab")
        PROCESS_LOGS.append(self.log)
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "creditflow"), "worker"],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def wait_assigned(self, timeout: float = 60) -> None:
        """Until the worker logged a partition assignment after it started, and the view is
        complete (a fresh view is 'rebuilt', from nothing, by the first worker)."""
        start = len(self.log_text())
        await wait_until(lambda: "assigned partitions" in self.log_text()[start:], timeout)
        await wait_view_complete(self.env, timeout)

    def kill9(self) -> None:
        if self.proc is not None and self.alive:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.alive:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()


async def wait_view_complete(namespace: Namespace, timeout: float = 60) -> None:
    """Until every slot of the namespace's view is marked complete."""
    client = namespace.view_client()
    epoch = ViewEpoch(client, namespace.view_keys())
    try:
        await wait_until(epoch.complete, timeout)
    finally:
        await client.aclose()


async def wait_until(
    check: Callable[[], bool | Awaitable[bool]], timeout: float, interval: float = 0.1
) -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def api_client(settings: Settings) -> httpx.AsyncClient:
    """The real API app in-process, talking to the real Redis and Kafka."""
    transport = httpx.ASGITransport(app=create_app(settings))
    return httpx.AsyncClient(transport=transport, base_url="http://creditflow.test")


async def raw_producer(settings: Settings) -> AIOKafkaProducer:
    """A plain aiokafka producer (not creditflow's code path)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5
    )
    await producer.start()
    return producer


def auth(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def read_topic(namespace: Namespace, topic: str) -> list[Any]:
    """Every record of a topic, from its start to its end now, with a plain aiokafka consumer."""
    settings = namespace.settings()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(namespace.partitions)]
        consumer.assign(tps)
        starts, ends = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                records += [
                    m for m in messages if m.offset < ends[TopicPartition(m.topic, m.partition)]
                ]
    finally:
        await consumer.stop()
    return records
