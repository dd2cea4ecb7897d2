"""Browser fixtures: the real stack, and a skip (with the reason) only when Chromium is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.harness import stack

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session", autouse=True)
def local_stack() -> None:
    """Kafka and Redis up (idempotent); each test module then takes its own topics and DB."""
    stack("up", "kafka", "redis")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = pytest.mark.skip(
        reason=f"{CHROMIUM} is missing: install Debian's chromium (scripts/browser does)"
    )
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.integration)
            if not CHROMIUM.exists():
                item.add_marker(missing)
