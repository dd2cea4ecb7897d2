"""Integration fixtures: the real Kafka and Redis of scripts/stack (started if not running)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.cluster import Cluster
from tests.integration.harness import stack


@pytest.fixture(scope="session", autouse=True)
def local_stack() -> None:
    """Kafka, Redis and the Redis Cluster up (idempotent); namespaces take their own parts."""
    stack("up", "kafka", "redis", "rcluster")


@pytest.fixture(scope="module")
def kafka_cluster() -> Iterator[Cluster]:
    """A fresh three-node Kafka cluster beside the single node, wiped after the module."""
    cluster = Cluster.from_env()
    started = time.monotonic()
    try:
        cluster.stack("wipe", "kafka")
        cluster.stack("up", "kafka")
        cluster.start_seconds = round(time.monotonic() - started, 1)
        yield cluster
    finally:
        cluster.stack("wipe", "kafka")  # stops the nodes and their port guards


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
        if "[cluster" in item.nodeid:
            item.add_marker(pytest.mark.rcluster)
