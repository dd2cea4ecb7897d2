"""The Kafka topics creditflow owns, and their idempotent creation."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code

from config.settings import Settings

__all__ = (
    "Replication",
    "TopicSpec",
    "ensure_topics",
    "partitions_of",
    "replication",
    "topic_specs",
)

logger = logging.getLogger(__name__)

_YEAR_MS = 365 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """Name, partition count and topic-level configuration."""

    name: str
    partitions: int
    config: dict[str, str]


@dataclass(frozen=True, slots=True)
class Replication:
    """Replicas per partition, and how many must hold a write before acks=all confirms it."""

    factor: int
    min_insync: int


def replication(settings: Settings, broker_default: int, live_brokers: int) -> Replication:
    """The replication of new topics: the settings, else what the cluster asks for and allows.

    The brokers' ``default.replication.factor`` is the operator's intent, so a broker that is
    down when topics are created makes the creation fail rather than leave a topic with fewer
    replicas for good; the live brokers (capped at 3) lift a default of 1 on a cluster.
    """
    factor = settings.replication_factor or max(broker_default, min(3, live_brokers))
    min_insync = settings.min_insync_replicas or (2 if factor >= 3 else 1)
    if min_insync > factor:
        raise ValueError(
            f"min.insync.replicas {min_insync} exceeds the replication factor {factor}: "
            "no acks=all write could succeed"
        )
    return Replication(factor, min_insync)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic, with the settings the design relies on."""
    horizon_ms = settings.late_horizon_days * 24 * 3600 * 1000
    return [
        # LogAppendTime: the broker stamps arrival, so "too late" is judged the same on replay.
        TopicSpec(
            settings.calls_topic,
            settings.partitions,
            {"message.timestamp.type": "LogAppendTime", "retention.ms": str(horizon_ms * 2)},
        ),
        TopicSpec(
            settings.dlq_topic,
            settings.partitions,
            {
                "message.timestamp.type": "LogAppendTime",
                "retention.ms": str(_YEAR_MS),
                "max.message.bytes": str(settings.dlq_max_record_bytes),
            },
        ),
        # Absolute bucket values: compaction keeps the latest value of every bucket forever.
        TopicSpec(
            settings.buckets_topic,
            settings.partitions,
            {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
        ),
        TopicSpec(settings.alerts_topic, settings.partitions, {"cleanup.policy": "compact"}),
        # Contracts and webhooks: one partition, so every process reads them in one order.
        TopicSpec(settings.config_topic, 1, {"cleanup.policy": "compact"}),
        # Latest delivery status per (alert, endpoint).
        TopicSpec(settings.deliveries_topic, 1, {"cleanup.policy": "compact"}),
        # One state-log partition per input partition (same number, same owner).
        TopicSpec(
            settings.state_topic,
            settings.partitions,
            {
                "cleanup.policy": "compact",
                # Small segments: the cleaner compacts only closed ones, and a restore reads
                # whatever is not compacted yet (every version of a busy day).
                "segment.ms": "600000",
                "segment.bytes": str(64 * 1024 * 1024),
                "min.cleanable.dirty.ratio": "0.1",
                "max.message.bytes": str(8 * 1024 * 1024),
            },
        ),
    ]


async def ensure_topics(settings: Settings) -> None:
    """Create missing topics and check that the state log matches the input's partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        specs = topic_specs(settings)
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            await _create(admin, missing, await _replication(admin, settings))
        counts = await _partition_counts(admin, [settings.calls_topic, settings.state_topic])
        if counts.get(settings.calls_topic) != counts.get(settings.state_topic):
            raise RuntimeError(
                f"{settings.state_topic} must have as many partitions as {settings.calls_topic}: "
                f"{counts}"
            )
        if counts.get(settings.calls_topic) != settings.partitions:
            raise RuntimeError(
                f"{settings.calls_topic} has {counts.get(settings.calls_topic)} partitions but "
                f"CREDITFLOW_PARTITIONS is {settings.partitions}; they must agree"
            )
        stamp = await _topic_config(admin, settings.calls_topic, "message.timestamp.type")
        if stamp != "LogAppendTime":
            # With producer timestamps, one clock running ahead would move the watermark and
            # send everything after it to the DLQ as too late; replays would not be deterministic.
            raise RuntimeError(
                f"{settings.calls_topic} has message.timestamp.type={stamp}; creditflow needs "
                "LogAppendTime (kafka-configs --alter --add-config "
                "message.timestamp.type=LogAppendTime)"
            )
        limit = await _topic_config(admin, settings.dlq_topic, "max.message.bytes")
        if limit is not None and int(limit) < settings.dlq_max_record_bytes:
            # A dead letter the broker refuses would also break the producer's idempotent
            # sequence on that partition: refuse to start rather than stall later.
            wanted = settings.dlq_max_record_bytes
            raise RuntimeError(
                f"{settings.dlq_topic} takes records of at most {limit} bytes but "
                f"CREDITFLOW_DLQ_MAX_RECORD_BYTES is {wanted} "
                f"(kafka-configs --alter --add-config max.message.bytes={wanted})"
            )
    finally:
        await admin.close()


async def _replication(admin: AIOKafkaAdminClient, settings: Settings) -> Replication:
    brokers = (await admin.describe_cluster())["brokers"]
    broker = str(brokers[0]["node_id"])
    default = await _config(admin, ConfigResourceType.BROKER, broker, "default.replication.factor")
    return replication(settings, int(default or 1), len(brokers))


async def _create(
    admin: AIOKafkaAdminClient, specs: list[TopicSpec], replicas: Replication
) -> None:
    """Create topics; one that another process created meanwhile is fine, any other error not."""
    response = await admin.create_topics(
        [
            NewTopic(
                spec.name,
                spec.partitions,
                replicas.factor,
                topic_configs={**spec.config, "min.insync.replicas": str(replicas.min_insync)},
            )
            for spec in specs
        ]
    )
    failed = {
        topic: f"{for_code(code).__name__}: {rest[0] if rest else ''}"[:300]
        for topic, code, *rest in response.topic_errors
        if code and for_code(code) is not TopicAlreadyExistsError
    }
    if failed:
        raise RuntimeError(
            f"could not create topics with {replicas.factor} replicas "
            f"(min.insync.replicas={replicas.min_insync}): {failed}"
        )
    logger.info(
        "created topics %s with %d replicas, min.insync.replicas=%d",
        [spec.name for spec in specs],
        replicas.factor,
        replicas.min_insync,
    )


async def _config(
    admin: AIOKafkaAdminClient, kind: ConfigResourceType, resource_name: str, name: str
) -> str | None:
    resource = ConfigResource(kind, resource_name, {name: None})
    (response,) = await admin.describe_configs([resource])
    for entry in response.to_object()["resources"][0]["config_entries"]:
        if entry["config_names"] == name:
            return str(entry["config_value"])
    return None


async def _topic_config(admin: AIOKafkaAdminClient, topic: str, name: str) -> str | None:
    """A topic's setting, waiting (up to 15 s) for a topic just created to reach the broker asked.

    On a cluster the broker that answers may not know a new topic yet and returns no entry,
    which would read as a missing setting; an existing topic always lists every setting.
    """
    deadline = time.monotonic() + 15
    while True:
        value = await _config(admin, ConfigResourceType.TOPIC, topic, name)
        if value is not None or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


async def _partition_counts(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, int]:
    """Partition counts, waiting (up to 15 s) for new topics to reach the metadata."""
    deadline = time.monotonic() + 15
    while True:
        described = await admin.describe_topics(topics)
        counts = {item["topic"]: len(item["partitions"]) for item in described}
        if all(counts.get(topic) for topic in topics) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.1)


async def partitions_of(settings: Settings, topic: str) -> list[int]:
    """Partition numbers of an existing topic (empty if it does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(
        part["partition"]
        for item in described
        if item["topic"] == topic and not item.get("error_code")
        for part in item["partitions"]
    )
