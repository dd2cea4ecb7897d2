"""Worker faults of issue 9, each through the real stack: a restart after kill -9, hostile input.

Every test runs its own namespace (topics, consumer group, Redis database) and checks that the
valid events published after the fault are counted, exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.chaos import view_buckets
from tests.integration.harness import ROOT, Namespace, new_env, raw_producer, wait_until

pytestmark = pytest.mark.faults

_PR_SET_CHILD_SUBREAPER = 36


def _event(account: str, event_id: str, credits: str = "1", **extra: Any) -> dict[str, Any]:
    when = datetime.now(UTC) - timedelta(minutes=1)
    return {
        "event_id": event_id,
        "account_id": account,
        "app_id": "bot",
        "occurred_at": when.isoformat(),
        "credits": credits,
        "calls": 1,
        **extra,
    }


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def _publish(namespace: Namespace, records: list[tuple[bytes | None, bytes]]) -> None:
    settings = namespace.settings()
    producer = await raw_producer(settings)
    try:
        for key, value in records:
            await producer.send_and_wait(settings.calls_topic, value, key=key)
    finally:
        await producer.stop()


async def _counted(namespace: Namespace, account: str) -> tuple[int, Decimal]:
    """Calls and credits of ``account`` in the Redis view, summed over its buckets."""
    buckets = await view_buckets(namespace, [account])
    return sum(c for c, _ in buckets.values()), sum((m for _, m in buckets.values()), Decimal(0))


async def _until_counted(namespace: Namespace, account: str, calls: int, credits: str) -> None:
    async def done() -> bool:
        return await _counted(namespace, account) == (calls, Decimal(credits))

    try:
        await wait_until(done, timeout=90, interval=0.2)
    except AssertionError:
        got = await _counted(namespace, account)
        raise AssertionError(f"{account}: expected ({calls}, {credits}), view has {got}") from None


# ---------------------------------------------------------------- finding 1


@contextlib.contextmanager
def _orphans_stay_zombies() -> Iterator[None]:
    """Adopt the orphans made meanwhile and never reap them, like a PID 1 that reaps nothing.

    The services scripts/stack starts outlive it, so they become this process's children; one
    killed with -9 then stays a zombie, which ``kill -0`` still finds. Without this the test
    would depend on the machine's init.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) is not available")
    try:
        yield
    finally:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _state(pid: int) -> str:
    """The process state letter in /proc/PID/stat ('' once the pid is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(") ")[2][:1]
    except FileNotFoundError:
        return ""


def _reap(pids: set[int]) -> None:
    deadline = time.monotonic() + 30
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
                time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_finding_01_stack_up_restarts_a_worker_killed_with_kill9(tmp_path: Path) -> None:
    """A worker killed with -9 stays a zombie: `up` must take it for dead and wait for the new one.

    Killed twice: by a plain ``kill -9`` (the OOM killer, an operator), then through
    ``scripts/stack kill9``; after each, `up` starts a worker and the next events count.
    """
    namespace = new_env("f01")
    local = tmp_path / "local"
    env = {
        **os.environ,
        **namespace.env,
        "CREDITFLOW_LOCAL_DIR": str(local),
        "CREDITFLOW_API_PORT": str(_free_port()),
    }
    # Kafka and Redis are the session's: the stack finds them listening and leaves them alone.
    script = str(ROOT / "scripts" / "stack")

    async def stack(*args: str, check: bool = True) -> None:
        run = subprocess.run
        await asyncio.to_thread(run, [script, *args], env=env, check=check, timeout=180)

    def pid(name: str) -> int:
        return int((local / "run" / f"{name}.pid").read_text())

    def ready_lines() -> int:
        return (local / "logs" / "worker.log").read_text().count("creditflow worker ready")

    account = f"f01-{namespace.name[-8:]}"
    started: set[int] = set()

    async def count_one_more(label: str, total: int) -> None:
        await _publish(namespace, [(account.encode(), _encode(_event(account, label)))])
        await _until_counted(namespace, account, total, str(total))

    with _orphans_stay_zombies():
        try:
            await stack("up", "worker")
            first = pid("worker")
            started.add(first)
            await count_one_more("first", 1)

            os.kill(first, signal.SIGKILL)
            await wait_until(lambda: _state(first) == "Z", timeout=10)
            await stack("up", "worker")
            second = pid("worker")
            started.add(second)
            assert second != first and _state(second) not in ("", "Z")
            assert ready_lines() == 2, "`up` returns once this start is ready, not the last one"
            await count_one_more("second", 2)

            await stack("kill9", "worker")
            assert _state(second) == "Z", "the killed worker lingers as a zombie"
            await stack("up")  # what `make up` runs
            third = pid("worker")
            started |= {third, pid("api")}
            assert third not in (first, second) and _state(third) not in ("", "Z")
            await count_one_more("third", 3)
        finally:
            await stack("down", "api", "worker", check=False)
            _reap(started)
