"""Integration fixtures: the real Kafka and Redis of scripts/stack (started if not running)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.cluster import Cluster
from tests.integration.harness import PROCESS_LOGS, stack

_LOG_TAIL_LINES = 60
_LOG_LINE_CHARS = 400
_FIRST_LOG = pytest.StashKey[int]()


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    # Where this test's processes start in the list of logs, for the report of its failure.
    item.stash[_FIRST_LOG] = len(PROCESS_LOGS)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    """A failed test's report ends with the tail of every worker and API log it started.

    CI keeps only the test output: without this, what a worker did during a failure that
    does not happen here is gone with the clone.
    """
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed:
        return
    for log in PROCESS_LOGS[item.stash.get(_FIRST_LOG, len(PROCESS_LOGS)) :]:
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        tail = [line[:_LOG_LINE_CHARS] for line in lines[-_LOG_TAIL_LINES:]]
        report.sections.append((f"{log.name} (last {len(tail)} lines)", "\n".join(tail)))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
        if "[cluster" in item.nodeid:
            item.add_marker(pytest.mark.rcluster)
