"""Days whose latest value still has to reach the bucket topic and the serving view.

The outbox is part of the local state (its own column family, written in the same atomic
batch as the days), so a day changed by a committed run is published after a crash too. It
decouples how often a day *changes* from how often it is *published*: a current-time run
changes a few days and publishes them all at once; a 30-day backfill changes tens of thousands
per run, and the outbox publishes the current and previous day at once and a bounded number of
older ones per run and per heartbeat (the longest waiting first), each carrying every change
made to it meanwhile.

The view may claim a partition's offset only when nothing at or below it waits here:
:meth:`Outbox.published` is what its progress line says.
"""

from __future__ import annotations

import heapq
import struct

from core.statecodec import day_range
from streams.state.store import PartitionStore, StoreBatch

__all__ = ("Outbox",)

_ENTRY = struct.Struct(">qq")


class Outbox:
    """In-memory mirror of a partition's outbox column family.

    Each day maps to the first input offset whose change is not yet published, and the
    watermark (newest append time) of the records before it: what a progress line at that
    offset says.
    """

    def __init__(self, store: PartitionStore) -> None:
        self._store = store
        self.pending: dict[bytes, tuple[int, int]] = {
            name: _ENTRY.unpack(raw) for name, raw in store.scan("outbox")
        }
        self._heap = [(first, name) for name, (first, _) in self.pending.items()]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self.pending)

    def stage_changed(
        self, batch: StoreBatch, names: list[bytes], first_offset: int, watermark_ms: int
    ) -> None:
        """Mark days changed by records from ``first_offset`` on (an earlier mark is kept).

        ``watermark_ms`` is the newest append time of the records before ``first_offset``.
        """
        entry = (first_offset, watermark_ms)
        packed = _ENTRY.pack(*entry)
        for name in names:
            if name not in self.pending:
                self.pending[name] = entry
                heapq.heappush(self._heap, (first_offset, name))
                batch.put("outbox", name, packed)

    def stage_published(self, batch: StoreBatch, names: list[bytes]) -> None:
        """Unmark days whose current value has been published."""
        for name in names:
            if self.pending.pop(name, None) is not None:
                batch.delete("outbox", name)

    def forget_before(self, day: int) -> list[bytes]:
        """Unmark (in memory; the store drops them with the day) days before ``day``."""
        _, end = day_range(0, day)
        gone = [name for name in self.pending if name < end]
        for name in gone:
            del self.pending[name]
        return gone

    def select(self, cold_limit: int, hot_from: bytes) -> list[bytes]:
        """Days to publish now.

        Every day at or after ``hot_from`` (what dashboards watch), then up to ``cold_limit``
        of the others, the longest waiting first.
        """
        hot = [name for name in self.pending if name >= hot_from]
        waiting = heapq.nsmallest(
            cold_limit,
            ((first, name) for name, (first, _) in self.pending.items() if name < hot_from),
        )
        return hot + [name for _, name in waiting]

    def published(self, applied: int, watermark_ms: int) -> tuple[int, int]:
        """The highest offset whose effects are all published, and the watermark there.

        ``applied`` and ``watermark_ms`` are the state's: what is claimed when nothing waits.
        """
        heap, pending = self._heap, self.pending
        while heap and (heap[0][1] not in pending or pending[heap[0][1]][0] != heap[0][0]):
            heapq.heappop(heap)
        if not heap:
            return applied, watermark_ms
        first, watermark = pending[heap[0][1]]
        return first - 1, watermark
