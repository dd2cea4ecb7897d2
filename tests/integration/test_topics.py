"""Topic creation on the real broker: settings creditflow relies on are created and enforced."""

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from config.topics import ensure_topics
from tests.integration.harness import new_env


async def test_an_input_topic_with_producer_timestamps_is_refused() -> None:
    settings = new_env("topics").settings()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    settings.calls_topic,
                    settings.partitions,
                    1,
                    topic_configs={"message.timestamp.type": "CreateTime"},
                )
            ]
        )
    finally:
        await admin.close()
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
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    settings.dlq_topic,
                    settings.partitions,
                    1,
                    topic_configs={"max.message.bytes": str(settings.dlq_max_record_bytes // 2)},
                )
            ]
        )
    finally:
        await admin.close()
    with pytest.raises(RuntimeError, match="CREDITFLOW_DLQ_MAX_RECORD_BYTES"):
        await ensure_topics(settings)
