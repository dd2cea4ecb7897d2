"""How the processor publishes when Kafka refuses records (finding 2 of issue 9), broker-free.

A refused record must never be retried forever: that would stop every partition of the worker.
The fake producer answers like aiokafka does, per record, through the record's future.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    RecordListTooLargeError,
)

from config.settings import Settings
from streams.processor import Processor
from streams.records import OutRecord
from tests.streams.fakes import RecordedBatch


class _Metadata:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class _Producer:
    """Records what it is asked to send; ``refuse`` says which sends fail, and how."""

    def __init__(self, refuse: Any) -> None:
        self.refuse = refuse
        self.sent: list[bytes | None] = []
        self.batches: list[int] = []  # the size of each batch sent

    async def send(self, topic: str, value: bytes | None, **_: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        error = self.refuse(topic, value, len(self.sent))
        self.sent.append(value)
        if isinstance(error, MessageSizeTooLargeError) and value == b"client-side":
            raise error  # aiokafka raises over max_request_size before queueing
        if error is None:
            future.set_result(_Metadata(len(self.sent) - 1))  # what aiokafka's future gives
        else:
            future.set_exception(error)
        return future

    def create_batch(self) -> RecordedBatch:
        return RecordedBatch()

    async def send_batch(
        self, batch: RecordedBatch, topic: str, *, partition: int
    ) -> asyncio.Future[Any]:
        """A batch is refused whole when one of its records would be."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        first = len(self.sent)
        self.batches.append(len(batch.records))
        errors = [
            self.refuse(topic, value, first + i) for i, (_, value, _) in enumerate(batch.records)
        ]
        self.sent += [value for _, value, _ in batch.records]
        error = next((e for e in errors if e is not None), None)
        if error is None:
            future.set_result(_Metadata(first))
        else:
            future.set_exception(error)
        return future


def _processor(producer: _Producer) -> Processor:
    return Processor(Settings(), producer, None, lambda _: 0, None)  # type: ignore[arg-type]


def _publish(processor: Processor, records: list[OutRecord]) -> Any:
    # A deadline only so that the old behaviour (retrying forever) fails instead of hanging.
    return asyncio.wait_for(processor._publish(records), timeout=10)


_MINIMAL = OutRecord("dlq", None, b"minimal")


@pytest.mark.parametrize("error", [MessageSizeTooLargeError, RecordListTooLargeError])
@pytest.mark.parametrize("value", [b"huge", b"client-side"])
async def test_finding_02_a_record_refused_as_too_large_gives_way_to_its_fallback(
    error: type[Exception], value: bytes
) -> None:
    producer = _Producer(lambda topic, v, n: error() if v == value else None)
    records = [
        OutRecord("buckets", b"k", b"before"),
        OutRecord("dlq", b"k", value, fallback=(_MINIMAL,)),
        OutRecord("buckets", b"k", b"after"),
    ]
    await _publish(_processor(producer), records)
    assert producer.sent == [b"before", value, b"after", b"minimal"]


async def test_a_too_large_record_without_fallback_raises_instead_of_retrying() -> None:
    producer = _Producer(
        lambda topic, v, n: MessageSizeTooLargeError() if topic == "state" else None
    )
    with pytest.raises(MessageSizeTooLargeError):
        await _publish(_processor(producer), [OutRecord("state", b"k", b"delta", 0)])
    assert producer.sent == [b"delta"]


async def test_a_lost_idempotent_sequence_raises() -> None:
    producer = _Producer(lambda topic, v, n: OutOfOrderSequenceNumber())
    with pytest.raises(OutOfOrderSequenceNumber):
        await _publish(_processor(producer), [OutRecord("dlq", None, b"x", fallback=(_MINIMAL,))])


async def test_transient_errors_resend_everything_in_order_with_fallbacks_in_place() -> None:
    def refuse(topic: str, value: bytes | None, n: int) -> Exception | None:
        if value == b"huge":
            return MessageSizeTooLargeError()
        return KafkaConnectionError() if n == 2 else None  # the broker drops once

    producer = _Producer(refuse)
    records = [
        OutRecord("buckets", b"k", b"v1"),
        OutRecord("dlq", b"k", b"huge", fallback=(_MINIMAL,)),
        OutRecord("buckets", b"k", b"v2"),
    ]
    await _publish(_processor(producer), records)
    assert producer.sent == [b"v1", b"huge", b"v2", b"v1", b"minimal", b"v2"]


async def test_records_of_one_given_partition_go_as_batches_with_their_own_offsets() -> None:
    producer = _Producer(lambda topic, v, n: None)
    state = [OutRecord("state", b"k%d" % i, b"s%d" % i, 0) for i in range(19)]
    records = [*state[:10], OutRecord("buckets", b"k", b"day"), *state[10:]]
    offsets = await _publish(_processor(producer), records)
    assert producer.sent == [r.value for r in records]
    assert offsets == list(range(len(records)))  # each record's place, batched or not
    # 10 state-log records (8 + 2), the day record alone, then 9 (8 + 1).
    assert producer.batches == [8, 2, 8, 1]


async def test_a_batch_failing_transiently_is_sent_again_with_everything_after_it() -> None:
    producer = _Producer(lambda topic, v, n: KafkaConnectionError() if n == 3 else None)
    records = [OutRecord("state", b"k", b"s%d" % i, 0) for i in range(10)]
    await _publish(_processor(producer), records)
    values = [r.value for r in records]
    assert producer.sent == values + values  # the first try's two batches, then all again
    assert producer.batches == [8, 2, 8, 2]  # the failed batch went whole, and again whole
