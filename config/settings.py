"""Runtime settings from the environment: ``CREDITFLOW_*`` plus the usual Kafka/Redis names."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.partition import Limits
from view.connection import REPLICA_WAIT_MS
from view.keys import DEFAULT_PREFIX

__all__ = ("DEV_ADMIN_TOKEN", "AdminTokenError", "Settings", "get_settings", "is_loopback")

CONFIG_DIR = Path(__file__).resolve().parent

DEV_ADMIN_TOKEN = "cf-dev-admin-token"  # noqa: S105 (documented dev default, printed at start)
"""Admin token of the dev stack when ``CREDITFLOW_ADMIN_TOKEN`` is unset (printed at start)."""


class AdminTokenError(ValueError):
    """The API must not start with this admin token configuration (the message says why)."""


def is_loopback(host: str) -> bool:
    """Whether an API bound to ``host`` is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class Settings(BaseSettings):
    """Everything a worker, the API or the CLI needs to know about its surroundings."""

    model_config = SettingsConfigDict(env_prefix="CREDITFLOW_", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "CREDITFLOW_KAFKA_BOOTSTRAP_SERVERS"
        ),
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "CREDITFLOW_REDIS_URL"),
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    admin_token: SecretStr | None = None
    tokens_file: Path = CONFIG_DIR / "tokens.yaml"
    contracts_file: Path = CONFIG_DIR / "contracts.yaml"

    group_id: str = Field("creditflow", description="Consumer group (Faust app id) of the workers.")
    partitions: int = Field(8, ge=1, description="Partitions of usage.calls.v1 and the state log.")
    replication_factor: int | None = Field(
        None,
        ge=1,
        description="Replicas per partition of the topics creditflow creates. Unset: the larger "
        "of the brokers' default.replication.factor and the live brokers (at most 3).",
    )
    min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="min.insync.replicas of those topics (acks=all writes need that many). "
        "Unset: 2 from 3 replicas up, else 1.",
    )
    kafka_request_timeout_seconds: float = Field(
        30.0,
        ge=1.0,
        description="Longest wait for a Kafka request of the worker (a broker failover takes "
        "a few seconds; Faust's own default of 20 minutes would hide a hang).",
    )
    calls_topic: str = "usage.calls.v1"
    dlq_topic: str = "usage.calls.dlq.v1"
    buckets_topic: str = "usage.buckets.v1"
    alerts_topic: str = "usage.alerts.v1"
    state_topic: str = "creditflow.state.v1"
    config_topic: str = "creditflow.config.v1"
    deliveries_topic: str = "creditflow.deliveries.v1"
    webhook_expiry_seconds: int = Field(
        24 * 3600, ge=1, description="Undelivered alerts are given up after this long."
    )
    webhook_timeout_seconds: float = Field(5.0, gt=0)

    late_horizon_days: int = Field(35, ge=1)
    future_tolerance_seconds: int = Field(300, ge=0)
    max_record_bytes: int = Field(1024 * 1024, ge=1024)
    dlq_max_record_bytes: int = Field(
        2 * 1024 * 1024,
        ge=64 * 1024,
        description="Largest dead letter: the DLQ topic's max.message.bytes, and every dead "
        "letter's bound (original bytes are cut to fit).",
    )

    batch_max_records: int = Field(
        25_000,
        ge=1,
        description="Most records of one fetch handed to the processor at once (offsets are "
        "also committed once this many records were applied since the last commit).",
    )
    commit_interval_seconds: float = Field(
        0.5,
        gt=0,
        le=60,
        description="How often a worker commits the input offsets it has made durable. A "
        "restarted worker reads again, and skips by its fence, what was applied since the "
        "last commit: with batch records at full speed, Faust's 2.8 s was up to 2 s of "
        "replayed fetches before the first new event of a restart.",
    )
    fetch_max_wait_ms: int = Field(
        100,
        ge=1,
        le=1500,
        description="Longest the broker holds a fetch request while its partitions have no data.",
    )
    fetch_partition_bytes: int = Field(
        8 * 1024 * 1024,
        ge=64 * 1024,
        description="Most bytes fetched from one input partition per request.",
    )
    run_max_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Input bytes applied and committed together (bounds a run's memory).",
    )
    runs_in_flight: int = Field(
        4,
        ge=1,
        description="Partitions whose runs are applied and committed at the same time (each "
        "holds its input and the days it touches in memory until committed).",
    )
    outbox_days_per_run: int = Field(
        1000,
        ge=1,
        description="Most older days (before yesterday) published per run, and per heartbeat "
        "of a partition that had no run since the last; the current and previous day always "
        "go at once.",
    )
    outbox_events_per_day: int = Field(
        100,
        ge=1,
        description="A run publishes one older changed day per this many events it applied "
        "(at least one): a backfill's older days follow at a pace that leaves the CPU to it.",
    )
    data_dir: Path = Field(
        Path("creditflow-data"), description="Where a worker keeps its partitions' local state."
    )
    worker_instance_id: str | None = Field(
        None,
        description="Static group membership id of this worker (default: host and data dir).",
    )
    store_cache_bytes: int = Field(
        64 * 1024 * 1024, ge=1024 * 1024, description="RocksDB block cache, shared per worker."
    )
    store_write_buffer_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024 * 1024,
        description="RocksDB memtables, shared per worker (charged to the block cache).",
    )
    heartbeat_ms: int = Field(500, ge=50, description="How often workers report progress.")
    session_timeout_seconds: float = Field(
        20.0, ge=6.0, description="A worker silent this long leaves the group (after kill -9)."
    )
    rebalance_timeout_seconds: float = Field(30.0, ge=1.0)

    # API limits against hostile or runaway clients (docs/security.md lists them all).
    max_request_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest POST /v1/events (and /api/v1/events) body; 413 beyond.",
    )
    sse_streams_per_token: int = Field(
        4,
        ge=1,
        description="Open SSE streams (usage and access) per token and API process; then 429.",
    )
    sse_streams_total: int = Field(
        200,
        ge=1,
        description="Open SSE streams (usage and access) per API process, all tokens; then 429.",
    )
    sse_max_points: int = Field(
        2000, ge=1, description="Most series windows a usage stream may ask for (recomputed live)."
    )
    answer_cache_bytes: int = Field(
        64 * 1024 * 1024, ge=0, description="Rendered usage answers kept per API process."
    )
    webhook_allowed_networks: str = Field(
        "",
        description="Comma-separated CIDRs webhooks may reach although not public "
        "(e.g. 127.0.0.0/8 for a local receiver); public addresses are always allowed.",
    )

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip())  # ValueError names the bad network
        return value

    @property
    def webhook_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """:attr:`webhook_allowed_networks`, parsed."""
        parts = self.webhook_allowed_networks.split(",")
        return tuple(ipaddress.ip_network(part.strip()) for part in parts if part.strip())

    # ---- serving view (Redis); key layout in view/keys.py
    redis_cluster_nodes: str = Field(
        "",
        validation_alias=AliasChoices("REDIS_CLUSTER_NODES", "CREDITFLOW_REDIS_CLUSTER_NODES"),
        description="host:port,... of Redis Cluster nodes; when set, used instead of REDIS_URL.",
    )
    view_prefix: str = Field(
        DEFAULT_PREFIX,
        description="First part of every view key: several views can share one Redis (Cluster).",
    )
    view_cache_bytes: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="Bytes of account-months an API process keeps between reads (LRU).",
    )
    view_replica_wait_ms: int = Field(
        REPLICA_WAIT_MS,
        ge=0,
        le=60_000,
        description="On a Redis Cluster, how long a view write waits for a replica to have it "
        "(kept and retried after); 0: a write is done once its master has it.",
    )
    view_rebuild_log_seconds: float = Field(
        5.0, gt=0, description="How often a view rebuild logs its progress."
    )

    # ---- OpenMeter-compatible surface (docs/openmeter.md)
    portal_token_ttl_seconds: int = Field(
        3600, ge=60, le=7 * 24 * 3600, description="Lifetime of a portal token."
    )
    portal_max_tokens: int = Field(
        10_000, ge=1, description="Portal tokens alive at once (creation beyond answers 409)."
    )
    openmeter_max_subjects: int = Field(
        1000, ge=1, description="Accounts one OpenMeter meter query may cover."
    )
    openmeter_max_cells: int = Field(
        1_000_000, ge=1, description="Windows x accounts one OpenMeter meter query may compute."
    )

    @property
    def limits(self) -> Limits:
        """Validation limits for the core."""
        return Limits(
            late_horizon_ms=self.late_horizon_days * 24 * 3600 * 1000,
            future_tolerance_ms=self.future_tolerance_seconds * 1000,
            max_record_bytes=self.max_record_bytes,
        )

    @property
    def instance_id(self) -> str:
        """The static group member id of this worker.

        A restart with the same local store (the same host and data dir) takes its partitions
        back at once, without waiting for the group to notice that the old process is gone;
        two processes sharing one store fence each other.
        """
        if self.worker_instance_id:
            return self.worker_instance_id
        digest = hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:12]
        return f"{socket.gethostname()}-{digest}"

    @property
    def effective_admin_token(self) -> str:
        """The token a local client (``creditflow top``) presents: the configured or dev one."""
        if self.admin_token is None:
            return DEV_ADMIN_TOKEN
        return self.admin_token.get_secret_value()

    def admin_token_for(self, host: str) -> str:
        """The admin token an API bound to ``host`` accepts; :class:`AdminTokenError` if none.

        The dev default is public, so it is only ever used on loopback: anything else (the
        Docker image binds 0.0.0.0) must be given a token. An empty or blank token would make
        ``Authorization: Bearer `` an admin credential, so it is refused everywhere.
        """
        if self.admin_token is None:
            if is_loopback(host):
                return DEV_ADMIN_TOKEN
            raise AdminTokenError(
                f"CREDITFLOW_ADMIN_TOKEN is unset and the API binds {host!r}, which is not "
                "loopback; the dev token is public, so set CREDITFLOW_ADMIN_TOKEN to a long "
                "random secret (e.g. `openssl rand -hex 32`)"
            )
        token = self.admin_token.get_secret_value()
        if not token.strip():
            raise AdminTokenError("CREDITFLOW_ADMIN_TOKEN is empty; set it to a secret or unset it")
        if not (token.isascii() and token.isprintable() and " " not in token):
            raise AdminTokenError(
                "CREDITFLOW_ADMIN_TOKEN must be visible ASCII without spaces (a bearer token)"
            )
        if token == DEV_ADMIN_TOKEN and not is_loopback(host):
            raise AdminTokenError(
                f"CREDITFLOW_ADMIN_TOKEN is the public dev token and the API binds {host!r}; "
                "set it to a long random secret"
            )
        return token


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process."""
    return Settings()
