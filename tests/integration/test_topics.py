"""Topic creation on the real broker: settings creditflow relies on are created and enforced."""

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from config.settings import Settings
from config.topics import ensure_topics
from tests.integration.harness import new_env


async def _create(settings: Settings, topic: str, configs: dict[str, str]) -> None:
    """Create ``topic`` beforehand with ``configs``, as an operator might have."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, settings.partitions, 1, topic_configs=configs)])
    finally:
        await admin.close()


async def test_an_input_topic_with_producer_timestamps_is_refused() -> None:
    settings = new_env("topics").settings()
    await _create(settings, settings.calls_topic, {"message.timestamp.type": "CreateTime"})
    with pytest.raises(RuntimeError, match="LogAppendTime"):
        await ensure_topics(settings)


async def test_topics_are_created_once_and_accepted_again() -> None:
    settings = new_env("topics").settings()
    await ensure_topics(settings)
    await ensure_topics(settings)  # idempotent: the second run finds everything in place


async def test_a_dlq_topic_smaller_than_the_dead_letter_bound_is_refused() -> None:
    # A dead letter the broker refused would also break the idempotent producer's sequence on
    # that partition (finding 2 of issue 9), so the bound must hold before the worker starts.
    settings = new_env("topics").settings()
    await _create(
        settings,
        settings.dlq_topic,
        {"max.message.bytes": str(settings.dlq_max_record_bytes // 2)},
    )
    with pytest.raises(RuntimeError, match="CREDITFLOW_DLQ_MAX_RECORD_BYTES"):
        await ensure_topics(settings)
