"""Runtime settings from the environment: ``CREDITFLOW_*`` plus the usual Kafka/Redis names."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.partition import Limits

__all__ = ("DEV_ADMIN_TOKEN", "Settings", "get_settings")

CONFIG_DIR = Path(__file__).resolve().parent

DEV_ADMIN_TOKEN = "cf-dev-admin-token"  # noqa: S105 (documented dev default, printed at start)
"""Admin token of the dev stack when ``CREDITFLOW_ADMIN_TOKEN`` is unset (printed at start)."""


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
    replication_factor: int = 1
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

    batch_max_records: int = Field(2000, ge=1, description="Records per processing batch.")
    batch_window_ms: int = Field(40, ge=1, description="Longest wait to fill a batch.")
    snapshot_every_bytes: int = Field(
        32 * 1024 * 1024, ge=1, description="State-log bytes after which a snapshot is written."
    )
    heartbeat_ms: int = Field(500, ge=50, description="How often workers report progress.")
    session_timeout_seconds: float = Field(
        20.0, ge=6.0, description="A worker silent this long leaves the group (after kill -9)."
    )
    rebalance_timeout_seconds: float = Field(30.0, ge=1.0)

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
    def effective_admin_token(self) -> str:
        """The admin token, or the documented dev default when none is configured."""
        if self.admin_token is None:
            return DEV_ADMIN_TOKEN
        return self.admin_token.get_secret_value()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process."""
    return Settings()
