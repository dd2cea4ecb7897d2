"""The view writer's bookkeeping without Redis: what stays pending when a write fails."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace, TracebackType
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from view.keys import ViewKeys
from view.writer import ViewWriter


class _Pipeline:
    def __init__(self, client: _Client) -> None:
        self.client = client
        self.calls: list[tuple[Any, ...]] = []

    async def __aenter__(self) -> _Pipeline:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def execute_command(self, command: str, *args: Any) -> None:
        self.calls.append((command.lower(), *args))

    async def execute(self) -> list[None]:
        if self.client.failures:
            failure = self.client.failures.pop(0)
            raise failure
        self.client.applied += self.calls
        return [None] * len(self.calls)


class _Client:
    """Pipelines that raise the queued failures, then apply their calls."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.applied: list[tuple[Any, ...]] = []

    def pipeline(self, transaction: bool) -> _Pipeline:
        return _Pipeline(self)

    def register_script(self, body: str) -> SimpleNamespace:
        return SimpleNamespace(sha="0" * 40)


async def test_a_refused_document_stays_pending_until_a_write_without_documents() -> None:
    client = _Client(RedisConnectionError("down"))
    writer = ViewWriter(client, ViewKeys("cf"))  # type: ignore[arg-type]
    assert not await writer.write_docs([("alerts:{acme}", "acme:2026-11-01:80", b"{}")])
    assert writer.has_pending
    assert await writer.write_docs()  # a retry without documents writes what is pending
    assert [call[0] for call in client.applied] == ["hset"]
    assert not writer.has_pending


async def test_counters_of_a_cancelled_flush_are_kept_for_the_next() -> None:
    client = _Client(asyncio.CancelledError())
    writer = ViewWriter(client, ViewKeys("cf"))  # type: ignore[arg-type]
    with pytest.raises(asyncio.CancelledError):
        await writer.write((), metrics={"events_accepted": 3})
    assert await writer.write((), metrics={"events_accepted": 2})
    assert [call[3] for call in client.applied if call[0] == "hincrby"] == [5]
