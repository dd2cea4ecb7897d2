"""Integration fixtures: the real Kafka and Redis of scripts/stack (started if not running)."""

from __future__ import annotations

import pytest

from tests.integration.harness import stack


@pytest.fixture(scope="session", autouse=True)
def local_stack() -> None:
    """Kafka and Redis up (idempotent); each test namespace then takes its own topics and DB."""
    stack("up", "kafka", "redis")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
