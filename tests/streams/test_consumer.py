"""The fetch consumer's commit rule, broker-free: only finished handler calls count.

The drain loop's bookkeeping runs on a FetchConsumer whose Faust parts (app, monitor, seek,
commit) are stand-ins; group membership and real fetches are covered by the integration and
fault suites.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from core.partition import SourceRecord
from streams import consumer as consumer_module
from streams.consumer import FetchConsumer, source_records
from streams.records import REROUTED_FROM_HEADER

A, B = TP("calls", 0), TP("calls", 1)


def _record(tp: TP, offset: int, value: bytes | None = b"{}", headers: Any = ()) -> Any:
    return ConsumerRecord(
        tp.topic, tp.partition, offset, 1_700_000_000_123, 1, b"k", value, None, 1, 2, headers
    )


class _Stopped:
    def is_set(self) -> bool:
        return False


def _consumer(handler: Any) -> FetchConsumer:
    consumer = FetchConsumer.__new__(FetchConsumer)
    consumer._durable = {}
    consumer._rebalances = 0
    consumer._since_commit = 0
    consumer._read_offset = defaultdict(lambda: None)
    consumer._buffered_partitions = set()
    consumer._commit_every = None
    consumer._stopped = consumer._crashed = _Stopped()  # type: ignore[assignment]
    consumer.handler = handler
    consumer.app = SimpleNamespace(  # type: ignore[assignment]
        monitor=SimpleNamespace(stream_inbound_time={}, track_tp_end_offset=lambda tp, o: None)
    )
    consumer.highwater = lambda tp: 0  # type: ignore[method-assign]
    consumer.seeks = 0  # type: ignore[attr-defined]

    async def perform_seek() -> None:
        consumer.seeks += 1  # type: ignore[attr-defined]

    consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    return consumer


def test_source_records_keep_what_the_core_needs() -> None:
    rerouted = _record(A, 7, b"[]", headers=((REROUTED_FROM_HEADER, b"calls/3@41"),))
    assert source_records([_record(B, 5, None), rerouted]) == [
        SourceRecord(1, 5, 1_700_000_000_123, b"k", b"", None),
        SourceRecord(0, 7, 1_700_000_000_123, b"k", b"[]", "calls/3@41"),
    ]


async def test_a_finished_call_makes_its_last_offsets_committable() -> None:
    handed: list[list[SourceRecord]] = []

    async def handler(records: list[SourceRecord]) -> None:
        handed.append(records)

    consumer = _consumer(handler)
    await consumer._hand({A: [_record(A, 3), _record(A, 4)], B: [_record(B, 9)]})
    assert [r.offset for r in handed[0]] == [3, 4, 9]  # one call for the whole fetch
    assert consumer._new_offset(A) == 5 and consumer._new_offset(B) == 10
    assert set(consumer._filter_tps_with_pending_acks()) == {A, B}


async def _held_call() -> tuple[FetchConsumer, asyncio.Event, asyncio.Future[None]]:
    """A consumer inside a call of its handler on offset 3 of A, held until ``release``."""
    entered, release = asyncio.Event(), asyncio.Event()

    async def handler(records: list[SourceRecord]) -> None:
        entered.set()
        await release.wait()

    consumer = _consumer(handler)
    call = asyncio.ensure_future(consumer._hand({A: [_record(A, 3)]}))
    await entered.wait()
    return consumer, release, call


async def test_nothing_is_committable_while_the_call_runs() -> None:
    consumer, release, call = await _held_call()
    assert consumer._new_offset(A) is None
    release.set()
    await call
    assert consumer._new_offset(A) == 4


async def test_a_call_that_a_rebalance_overlapped_does_not_count() -> None:
    consumer = _consumer(None)

    async def handler(records: list[SourceRecord]) -> None:
        consumer._rebalances += 1  # what on_partitions_revoked/assigned do meanwhile

    consumer.handler = handler
    await consumer._hand({A: [_record(A, 3)]})
    assert consumer._new_offset(A) is None
    assert consumer._read_offset[A] is None  # the rebalance's seek decides what is read next


async def test_records_before_the_next_unread_offset_are_not_handed_again() -> None:
    consumer = _consumer(None)
    consumer._read_offset[A] = 4
    wanted = consumer._wanted({A: [_record(A, 3), _record(A, 4)], B: [_record(B, 1)]}, {A})
    assert list(wanted) == [A] and [r.offset for r in wanted[A]] == [4]


async def test_a_stop_during_a_call_lets_it_finish_and_count(monkeypatch: Any) -> None:
    consumer, release, call = await _held_call()
    call.cancel()
    await asyncio.sleep(0)
    assert not call.done()  # still waiting for the call, whatever the cancellation
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert consumer._new_offset(A) == 4


async def test_a_failing_call_exits_before_anything_commits(monkeypatch: Any) -> None:
    class Exited(Exception):
        pass

    def fail(error: BaseException) -> None:
        raise Exited(str(error))

    monkeypatch.setattr(consumer_module, "_fail", fail)

    async def handler(records: list[SourceRecord]) -> None:
        raise RuntimeError("a bug")

    consumer = _consumer(handler)
    with pytest.raises(Exited, match="a bug"):
        await consumer._hand({A: [_record(A, 3)]})
    assert consumer._new_offset(A) is None


async def test_a_call_cancelled_from_inside_reads_its_records_again() -> None:
    async def handler(records: list[SourceRecord]) -> None:
        raise asyncio.CancelledError  # as when a partition's load is cancelled

    consumer = _consumer(handler)
    await consumer._hand({A: [_record(A, 3)]})
    assert consumer._new_offset(A) is None
    assert consumer.seeks == 1  # type: ignore[attr-defined]
