"""Integration fixtures: the real Kafka and Redis of scripts/stack (started if not running)."""

from __future__ import annotations

import pytest

from tests.integration.harness import stack


@pytest.fixture(scope="session", autouse=True)
def local_stack() -> None:
    """Kafka, Redis and the Redis Cluster up (idempotent); namespaces take their own parts."""
    stack("up", "kafka", "redis", "rcluster")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
        if "[cluster" in item.nodeid:
            item.add_marker(pytest.mark.cluster)
