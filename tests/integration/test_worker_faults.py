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
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.events import Reason
from models.dlq import DlqRecord
from tests.integration.chaos import view_buckets
from tests.integration.harness import (
    ROOT,
    Namespace,
    WorkerProcess,
    api_client,
    auth,
    new_env,
    raw_producer,
    read_topic,
    wait_until,
)
from view.reader import ViewNotReady

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
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


async def _publish(
    namespace: Namespace, records: list[tuple[bytes | None, bytes]]
) -> list[tuple[int, int]]:
    """Publish in order; the (partition, offset) of each record."""
    settings = namespace.settings()
    producer = await raw_producer(settings)
    try:
        placed = []
        for key, value in records:
            meta = await producer.send_and_wait(settings.calls_topic, value, key=key)
            placed.append((meta.partition, meta.offset))
        return placed
    finally:
        await producer.stop()


async def _counted(namespace: Namespace, account: str) -> tuple[int, Decimal]:
    """Calls and credits of ``account`` in the Redis view, summed over its buckets."""
    buckets = await view_buckets(namespace, [account])
    return sum(c for c, _ in buckets.values()), sum((m for _, m in buckets.values()), Decimal(0))


async def _until_counted(namespace: Namespace, account: str, calls: int, credits: str) -> None:
    async def done() -> bool:
        try:
            return await _counted(namespace, account) == (calls, Decimal(credits))
        except ViewNotReady:  # a fresh view is complete once its keeper has run
            return False

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


# ---------------------------------------------------------------- hostile input, end to end


@pytest.fixture(scope="module")
async def hostile() -> AsyncIterator[Namespace]:
    """One worker for the hostile-input cases; each case uses accounts of its own."""
    namespace = new_env("hostile")
    worker = WorkerProcess(namespace).start()
    try:
        await worker.wait_assigned()
        yield namespace
    finally:
        worker.stop()


def _source_of(message: Any) -> tuple[int, int]:
    source = json.loads(message.value)["source"]
    return source["partition"], source["offset"]


async def _dead_letters(namespace: Namespace, placed: list[tuple[int, int]]) -> list[Any]:
    """The DLQ records of the input records at ``placed``, once each has one (one per dlq_id)."""
    wanted = set(placed)
    topic = namespace.settings().dlq_topic
    found: dict[str, Any] = {}

    async def arrived() -> bool:
        for message in await read_topic(namespace, topic):
            if _source_of(message) in wanted:
                found.setdefault(json.loads(message.value)["dlq_id"], message)
        return {_source_of(message) for message in found.values()} == wanted

    await wait_until(arrived, timeout=60, interval=0.5)
    return list(found.values())


async def test_finding_02_oversized_dead_letter_does_not_stall(hostile: Namespace) -> None:
    """The issue's two inputs make dead letters of ~3 MB unless bounded; the DLQ takes 2 MiB."""
    account = f"f02-{hostile.name[-8:]}"
    huge_credits = _encode(_event(account, "huge", credits="\U0010ffff" * 250_000))
    inputs = [(account.encode(), huge_credits), (b"\x01" * 300_000, b"\x01" * 600_000)]
    assert all(len(key) + len(value) < 1_000_200 for key, value in inputs)
    placed = await _publish(hostile, inputs)
    await _publish(hostile, [(account.encode(), _encode(_event(account, "next", "2.5")))])
    await _until_counted(hostile, account, 1, "2.5")

    limit = hostile.settings().dlq_max_record_bytes
    letters = await _dead_letters(hostile, placed)
    assert len(letters) == 2
    for message in letters:
        assert len(message.value) + len(message.key or b"") <= limit
        body = DlqRecord.model_validate_json(message.value)
        assert body.original_truncated and body.reason in (
            Reason.INVALID_EVENT,
            Reason.INVALID_JSON,
        )


async def test_finding_04_a_deep_item_in_a_batch_counts_the_valid_one(hostile: Namespace) -> None:
    account = f"f04-{hostile.name[-8:]}"
    deep = (
        _encode(_event(account, "deep"))[:-1]
        + b',"attributes":'
        + b'{"a":' * 1000
        + b"1"
        + b"}" * 1001
    )
    batch = b"[" + _encode(_event(account, "valid", "3")) + b"," + deep + b"]"
    placed = await _publish(hostile, [(account.encode(), batch)])
    await _until_counted(hostile, account, 1, "3")
    (letter,) = await _dead_letters(hostile, placed)
    body = DlqRecord.model_validate_json(letter.value)
    assert (body.reason, body.index) == (Reason.INVALID_EVENT, 1)
    assert body.original is not None and body.original.encode() == deep


async def test_finding_12_duplicate_keys_are_refused_by_the_worker_and_the_api(
    hostile: Namespace,
) -> None:
    account, evil = f"f12-{hostile.name[-8:]}", f"evil-{hostile.name[-8:]}"
    twice = _encode(_event(account, "twice", "7"))[:-1] + f',"account_id":"{evil}"}}'.encode()
    batch = b"[" + _encode(_event(account, "once", "4")) + b"," + twice + b"]"
    placed = await _publish(hostile, [(account.encode(), batch)])
    await _until_counted(hostile, account, 1, "4")
    (letter,) = await _dead_letters(hostile, placed)
    body = DlqRecord.model_validate_json(letter.value)
    assert (body.reason, body.index) == (Reason.DUPLICATE_KEY, 1)
    assert await _counted(hostile, evil) == (0, Decimal(0))

    async with api_client(hostile.settings()) as client:
        response = await client.post("/v1/events", content=twice, headers=auth())
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["accepted"] == 0
    assert [(r["index"], r["reason"]) for r in answer["rejected"]] == [(0, "duplicate_key")]
