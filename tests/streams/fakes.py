"""In-process stand-ins for the processor's Kafka and Redis sides (broker-free shell tests).

In the spirit of bytewax's testing harness and quix-streams' recovery tests: the real
:class:`streams.processor.Processor` runs over real RocksDB stores in a temporary directory,
with a :class:`RecordingProducer` for Kafka, a :class:`RecordingView` for Redis and a state log
read back from what the producer recorded. Both record into one :class:`Journal`, so a test
can assert the order of sends, acknowledgements and view writes across them, and what the
partition's store had committed at each of those moments.

They live under ``tests/``, not in the shipped package: nothing but these tests runs the
processor without Kafka, and an installed module only tests import would be dead code.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError

from config.settings import Settings
from core.days import Bucket, DayColumns, DayKey, DayUsage
from core.freshness import Progress
from core.ledger import TermsLookup
from streams.processor import Processor, RecordBatch, StateLogEntry, StateLogReader
from tests.core.support import local_only

__all__ = (
    "GatedStateLog",
    "Journal",
    "RecordedBatch",
    "RecordingProducer",
    "RecordingView",
    "Sent",
    "Shell",
    "Step",
    "committed_offset",
    "shell",
)


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the processor did: ``send`` or ``ack`` of a record to ``topic``, or a
    ``view`` write (``topic`` is then ``days`` or ``progress``), or a ``mark`` the test made.

    ``committed`` is the input offset the partition's store had committed at that moment
    (:func:`committed_offset`): what a restart would resume after.
    """

    kind: str
    topic: str
    committed: int


@dataclass
class Journal:
    """Every step of the producer and the view, in the order they happened."""

    steps: list[Step] = field(default_factory=list)
    probe: Callable[[], int] = lambda: -1
    """Reads the committed offset (set once the processor exists)."""

    def add(self, kind: str, topic: str) -> None:
        """Record a step with what the store had committed then."""
        self.steps.append(Step(kind, topic, self.probe()))

    def phases(self, names: Mapping[str, str]) -> list[str]:
        """The steps as a sequence of phases (``names``: topic -> phase), repeats collapsed.

        Sends and acknowledgements of one phase interleaved with another's show as the
        phases alternating, so a single pass over each phase is the order the docstring of
        :mod:`streams.processor` promises.
        """
        out: list[str] = []
        for step in self.steps:
            phase = names.get(step.topic, step.topic)
            if not out or out[-1] != phase:
                out.append(phase)
        return out


def committed_offset(processor: Processor, partition: int) -> int:
    """The last input offset the partition's local store has committed (-1: none, or closed).

    Reads the fence from RocksDB, not the in-memory state: it is what survives a crash. The
    one place these tests look inside the processor.
    """
    owned = processor._owned.get(partition)
    return -1 if owned is None else owned.store.fence().applied


@dataclass(frozen=True, slots=True)
class Sent:
    """A record the producer was given, with the offset it got in its topic partition."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None
    headers: list[tuple[str, bytes]]
    offset: int


class _Ack:
    """What ``send`` returns: awaiting it is the processor learning that Kafka has the record."""

    def __init__(self, journal: Journal, sent: Sent, error: KafkaError | None) -> None:
        self._journal, self._sent, self._error = journal, sent, error

    def __await__(self) -> Generator[None, None, Sent]:
        return self._acknowledge().__await__()

    async def _acknowledge(self) -> Sent:
        # Kafka's acknowledgement always comes later: other tasks run meanwhile.
        await asyncio.sleep(0)
        self._journal.add("ack", self._sent.topic)
        if self._error is not None:
            raise self._error
        return self._sent


class RecordedBatch:
    """What :meth:`RecordingProducer.create_batch` gives: records kept until the batch is sent.

    Holds at most :attr:`LIMIT` records, so tests see a run's records split across batches.
    """

    LIMIT = 8

    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []

    def append(
        self,
        *,
        timestamp: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> object | None:
        """Keep a record; None once the batch is full (the first record always fits)."""
        if len(self.records) >= self.LIMIT:
            return None
        self.records.append((key, value, list(headers)))
        return len(self.records)


class RecordingProducer:
    """A :class:`streams.processor.RecordProducer` that keeps every record, as a topic would.

    ``refuse(topic, value)`` may return an error for a record: its acknowledgement raises it
    and the record is not kept (Kafka did not take it).
    """

    def __init__(
        self,
        journal: Journal,
        refuse: Callable[[str, bytes | None], KafkaError | None] = lambda topic, value: None,
    ) -> None:
        self.journal = journal
        self.refuse = refuse
        self.sent: list[Sent] = []
        self._next: Counter[tuple[str, int]] = Counter()

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Awaitable[Sent]:
        """Keep the record (unless refused); its offset is the next of its topic partition."""
        self.journal.add("send", topic)
        error = self.refuse(topic, value)
        place = (topic, partition or 0)
        sent = Sent(topic, key, value, partition, list(headers or []), self._next[place])
        if error is None:
            self._next[place] += 1
            self.sent.append(sent)
        return _Ack(self.journal, sent, error)

    def create_batch(self) -> RecordedBatch:
        """An empty batch, as aiokafka's ``create_batch`` gives."""
        return RecordedBatch()

    async def send_batch(
        self, batch: RecordBatch, topic: str, *, partition: int
    ) -> Awaitable[Sent]:
        """Keep every record of a batch, or none if one is refused: Kafka takes a batch whole.

        Acknowledged with its first record (whose offset the batch's others follow).
        """
        assert isinstance(batch, RecordedBatch)
        kept: list[Sent] = []
        error = None
        place = (topic, partition)
        for key, value, headers in batch.records:
            self.journal.add("send", topic)
            error = error or self.refuse(topic, value)
            kept.append(Sent(topic, key, value, partition, headers, self._next[place] + len(kept)))
        if error is None:
            self._next[place] += len(kept)
            self.sent += kept
        return _Ack(self.journal, kept[0], error)

    def topic(self, topic: str) -> list[Sent]:
        """The records kept for ``topic``, in order."""
        return [sent for sent in self.sent if sent.topic == topic]

    def log(self, topic: str, partition: int) -> list[StateLogEntry]:
        """One topic partition as a reader sees it: ``(offset, key, value)``."""
        return [
            (s.offset, s.key or b"", s.value)
            for s in self.sent
            if s.topic == topic and (s.partition or 0) == partition
        ]

    def state_log(self, topic: str) -> StateLogReader:
        """A :data:`streams.processor.StateLogReader` over what was kept for ``topic``."""

        async def read(partition: int, start: int) -> AsyncIterator[Sequence[StateLogEntry]]:
            yield [entry for entry in self.log(topic, partition) if entry[0] >= start]

        return read


class GatedStateLog:
    """A state log whose reads wait for :attr:`release`; :attr:`reading` says one began.

    Holds a partition in its loading phase for as long as a test needs, without sleeps.
    """

    def __init__(self, entries: Sequence[StateLogEntry] = ()) -> None:
        self.entries = list(entries)
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def read(self, partition: int, start: int) -> AsyncIterator[Sequence[StateLogEntry]]:
        """The :data:`streams.processor.StateLogReader`: one batch, once released."""
        self.reading.set()
        await self.release.wait()
        yield [entry for entry in self.entries if entry[0] >= start]


class RecordingView:
    """A :class:`streams.processor.ViewSink` holding the view in memory, as Redis would.

    Days are versioned upserts (a lower or equal version is left alone), progress lines and
    documents overwrite, counters add up. While :attr:`refuse_days` is set, a write with days
    fails *and forgets them*: what reaches the view afterwards is only what the processor
    sends again, so a test sees the processor's own retry (its outbox), not this writer's
    (:class:`view.writer.ViewWriter` keeps failed days pending and retries them itself).
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.days: dict[DayKey, DayUsage] = {}
        self.progress: dict[int, Progress] = {}
        self.metrics: Counter[str] = Counter()
        self.docs: dict[tuple[str, str], bytes] = {}
        self.refuse_days = False

    @property
    def has_pending(self) -> bool:
        """Nothing is kept from a failed write."""
        return False

    async def write(
        self,
        days: Iterable[tuple[DayKey, DayColumns]],
        progress: Mapping[int, Progress] | None = None,
        metrics: Mapping[str, int] | None = None,
        docs: Iterable[tuple[str, str, bytes]] = (),
    ) -> bool:
        """Apply a write, or fail it whole if it has days and days are refused.

        Days are kept as :class:`DayUsage`, to compare with what records and stores hold.
        """
        days = list(days)
        self.journal.add("view", "days" if days else "progress")
        if days and self.refuse_days:
            return False
        for key, day in days:
            known = self.days.get(key)
            if known is None or known.version < day.version:
                buckets = zip(day.order, map(Bucket, day.calls, day.micro), strict=True)
                self.days[key] = DayUsage(day.version, dict(buckets))
        self.metrics.update(metrics or {})
        self.docs.update(((name, doc_field), body) for name, doc_field, body in docs)
        self.progress.update(progress or {})
        return True

    async def flush(self, progress: Mapping[int, Progress] | None = None) -> bool:
        """Nothing is pending: only the progress lines are written."""
        return await self.write((), progress)

    async def read_progress(self, partition: int) -> Progress | None:
        """The progress line of a partition (the processor's ``read_view_progress``)."""
        return self.progress.get(partition)


@dataclass
class Shell:
    """A processor with its recording producer and view, over stores in ``data_dir``."""

    processor: Processor
    producer: RecordingProducer
    view: RecordingView
    journal: Journal


@asynccontextmanager
async def shell(
    data_dir: Path,
    *,
    state_log: StateLogReader | None = None,
    refuse: Callable[[str, bytes | None], KafkaError | None] = lambda topic, value: None,
    partition_for: Callable[[str], int] = local_only,
    terms_for: TermsLookup | None = None,
    **settings_fields: Any,
) -> AsyncIterator[Shell]:
    """A running shell; its stores are closed on exit.

    ``state_log`` defaults to what this shell's own producer publishes to the state topic
    (an empty log at the start: a first assignment). The journal probes partition 0's
    store; ``settings_fields`` override :class:`config.settings.Settings`.
    """
    settings = Settings(data_dir=data_dir, **settings_fields)
    journal = Journal()
    producer = RecordingProducer(journal, refuse)
    view = RecordingView(journal)
    processor = Processor(
        settings,
        producer,
        view,
        partition_for,
        view.read_progress,
        terms_for,
        state_log=state_log or producer.state_log(settings.state_topic),
    )
    journal.probe = lambda: committed_offset(processor, 0)
    try:
        yield Shell(processor, producer, view, journal)
    finally:
        await processor.close()
