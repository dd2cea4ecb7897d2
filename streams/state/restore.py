"""Rebuilding a partition's local store from its state log: a full restore or a catch-up.

A worker that opens a partition reads the state log from just past its store's checkpoint
(the beginning, for a store it does not have) to the end seen at that moment, then processes
input past the fence. Per day and per period total the value with the highest version wins,
whichever writer tag it came under; the fence is the highest any writer reached; ids are a
union. (Why tags: :mod:`streams.state.changelog`.)

A compacted log read only part of the way is not a consistent state: a key whose older values
were compacted away may sit after the point reached. So while records are applied the store
has no fence, only a ``restore`` marker holding the fences seen and the log offset reached; a
restore cut short resumes from there, and the fence is written when the end is reached.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from core.days import DAY_MS
from core.statecodec import (
    DAY_PREFIX,
    FORMAT_VERSION,
    TAG_BYTES,
    Kind,
    counter_key,
    parse_period_key,
    parse_segment_key,
    version_of,
)
from streams.state.store import Fence, PartitionStore, StoreBatch

__all__ = ("RestoreProgress", "Restorer")

logger = logging.getLogger(__name__)

_RESTORE = b"restore"
_REQUEUE = b"requeue"
"""Set in the batch of any restored day, cleared with the outbox marks that queue them: a
crash or a revocation between a restore's end and that queueing must not leave restored days
that nothing publishes."""
_LOCAL = b"local"
"""Stands for the store's own fence among the fences a restore has seen."""
_BATCH_OPS = 20_000
"""Puts per local write while restoring: RocksDB's write holds the GIL, keep each short."""
_encode = msgspec.msgpack.encode
_ids = msgspec.msgpack.Decoder(list[bytes])
_int = msgspec.msgpack.Decoder(int)
_fence = msgspec.msgpack.Decoder(tuple[int, int, int, int])
_marker = msgspec.msgpack.Decoder(tuple[int, dict[bytes, tuple[int, int, int]]])


@dataclass(slots=True)
class RestoreProgress:
    """Counts for the progress lines of a restore."""

    records: int = 0
    ids: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self, partition: int, done: int, total: int) -> str:
        """``restored N ids (R ids/s), P% of the log, ETA S s``."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        share = done / total if total else 1.0
        eta = elapsed * (1 - share) / share if share else float("inf")
        return (
            f"partition {partition}: restored {self.ids:,} ids from {self.records:,} state-log "
            f"records ({self.ids / elapsed:,.0f} ids/s), {share:.0%} of the log, ETA {eta:.0f} s"
        )


class Restorer:
    """Applies state-log records, in log order, to a partition's local store."""

    def __init__(self, store: PartitionStore) -> None:
        self.store = store
        marker = store.get("meta", _RESTORE)
        self.fences: dict[bytes, tuple[int, int, int]]
        if marker is not None:  # an interrupted restore: resume it
            self.log_offset, self.fences = _marker.decode(marker)
        else:
            fence = store.fence()
            self.log_offset = fence.state_log_offset
            self.fences = {}
            if fence.applied >= 0:
                self.fences[_LOCAL] = (fence.applied, fence.watermark_ms, fence.first_day)
        self.progress = RestoreProgress()
        self._days_staged = False
        self._batch = store.batch()
        self._staged: dict[bytes, bytes | None] = {}
        """Day and total values (with tag) staged in the current batch, for the version merge."""
        self._counters: dict[bytes, int] = {}

    def feed(self, records: Iterable[tuple[int, bytes, bytes | None]]) -> None:
        """Stage ``(log offset, key, value)`` records; writes in bounded batches."""
        for offset, key, value in records:
            kind = key[:1]
            if kind == Kind.IDS:
                self._ids(key, value)
            elif kind == Kind.DAY:
                self._newest("days", key[1 + TAG_BYTES :], key, value)
                self._days_staged = True
            elif kind == Kind.TOTAL:
                self._newest("ledger", Kind.TOTAL + key[1 + TAG_BYTES :], key, value)
            elif kind == Kind.FIRED:
                if value is None:
                    self._batch.delete("ledger", key)
                else:
                    self._batch.put("ledger", key, value)
            elif kind == Kind.FENCE:
                self._fence(key[1:], value)
            self.progress.records += 1
            self.log_offset = offset
            if self._batch.ops >= _BATCH_OPS:
                self._write(done=False)

    def _ids(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            return  # the day expired: the restored fence's first day drops it whole
        day, tag, seq = parse_segment_key(key)
        prefix = key[1 : 1 + DAY_PREFIX]
        entries = _ids.decode(value)
        self._batch.put_keys("ids", [prefix + entry for entry in entries])
        counter = counter_key(day, tag)
        known = self._counters.get(counter)
        if known is None:
            stored = self.store.get("meta", counter)
            known = 0 if stored is None else _int.decode(stored)
        self._counters[counter] = max(known, seq + 1)
        self.progress.ids += len(entries)

    def _newest(self, family: str, name: bytes, key: bytes, value: bytes | None) -> None:
        """Keep the value with the higher version; a tombstone removes only its own tag's."""
        tag = key[1 : 1 + TAG_BYTES]
        current = self._staged[name] if name in self._staged else self.store.get(family, name)
        if value is None:
            if current is not None and current[:TAG_BYTES] == tag:
                self._staged[name] = None
                self._batch.delete(family, name)
            return
        if current is not None and version_of(current[TAG_BYTES:]) >= version_of(value):
            return
        self._staged[name] = tag + value
        self._batch.put(family, name, tag + value)

    def _fence(self, tag: bytes, value: bytes | None) -> None:
        if value is None:
            self.fences.pop(tag, None)
            return
        version, applied, watermark, first_day = _fence.decode(value)
        if version != FORMAT_VERSION:
            raise ValueError(f"state log of format {version}; this worker reads {FORMAT_VERSION}")
        self.fences[tag] = (applied, watermark, first_day)

    def _write(self, done: bool) -> None:
        for counter, count in self._counters.items():
            self._batch.put("meta", counter, _encode(count))
        if self._days_staged:
            self._batch.put("meta", _REQUEUE, b"")
            self._days_staged = False
        if done:
            self._batch.delete("meta", _RESTORE)
            PartitionStore.stage_fence(self._batch, self.fence())
            if self.fence().first_day > 0:
                PartitionStore.stage_expiry(self._batch, self.fence().first_day)
        else:
            self._batch.put("meta", _RESTORE, _encode((self.log_offset, self.fences)))
        self.store.write(self._batch)
        self._batch = self.store.batch()
        self._staged.clear()
        self._counters.clear()

    def fence(self) -> Fence:
        """The restored fence: the highest any writer reached, at the log offset read."""
        if not self.fences:
            return Fence(-1, 0, 0, self.log_offset)
        fences = self.fences.values()
        return Fence(
            max(fence[0] for fence in fences),
            max(fence[1] for fence in fences),
            max(fence[2] for fence in fences),
            self.log_offset,
        )

    def finish(self) -> Fence:
        """Write what is staged and the fence (dropping days the fence says have expired).

        Periods that ended by the fence's first day go too: a zombie's late record can bring
        back a total or a fired threshold the new owner had already expired.
        """
        self._write(done=True)
        fence = self.fence()
        cutoff = fence.first_day * DAY_MS
        batch = self.store.batch()
        for key, value in self.store.scan("ledger"):
            total = key[:1] == Kind.TOTAL
            end = parse_period_key(key[1:]).end_ms if total else _int.decode(value)
            if end <= cutoff:
                batch.delete("ledger", key)
        if batch.ops:
            self.store.write(batch)
        return fence

    @property
    def days_to_queue(self) -> bool:
        """Whether restored days may still be missing from the view.

        Queue them, and :meth:`stage_queued` in the same batch.
        """
        return self.store.get("meta", _REQUEUE) is not None

    @staticmethod
    def stage_queued(batch: StoreBatch) -> None:
        """Say, in the batch that marks them in the outbox, that the restored days are queued."""
        batch.delete("meta", _REQUEUE)

    def other_writers(self) -> set[bytes]:
        """Fence tags of writers seen in the log (the next commit retires them)."""
        return {tag for tag in self.fences if tag != _LOCAL}
