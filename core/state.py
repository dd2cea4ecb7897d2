"""What the core reads of a partition's stored state, and an in-memory store for tests.

The core never holds the state itself: remembered ids and days live in a store (RocksDB on
local disk in the worker, :class:`MemoryState` in tests and the benchmark's models). A run of
records asks the store for what it needs in batches, computes a :class:`core.partition.
BatchOutcome`, and the shell writes that outcome back in one atomic batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.buckets import BUCKET_MS
from core.days import DAY_MS, DayKey
from core.statecodec import DAY_PREFIX, day_key, day_range, decode_day, parse_day_key

__all__ = ("MemoryState", "StateReader")


class StateReader(Protocol):
    """Batched reads of a partition's stored state."""

    def seen(self, keys: Sequence[bytes]) -> Sequence[object | None]:
        """For each id key, something (not None) when the id is remembered."""
        ...

    def day_values(self, keys: Sequence[DayKey]) -> Sequence[bytes | None]:
        """The stored usage of each day, encoded (:mod:`core.statecodec`); None: none."""
        ...

    def account_micro(self, account_id: str, start_ms: int, end_ms: int) -> int:
        """Micro-credits of the account's stored buckets (all apps) in ``[start_ms, end_ms)``."""
        ...


@dataclass(slots=True)
class MemoryState:
    """A :class:`StateReader` over dicts, with the same expiry rules as the worker's store."""

    ids: set[bytes] = field(default_factory=set)
    usage: dict[bytes, bytes] = field(default_factory=dict)
    """Day key -> encoded day value, as the worker's store keeps them."""

    def seen(self, keys: Sequence[bytes]) -> list[object | None]:
        """See :class:`StateReader`."""
        ids = self.ids
        return [True if key in ids else None for key in keys]

    def day_values(self, keys: Sequence[DayKey]) -> list[bytes | None]:
        """See :class:`StateReader`."""
        return [self.usage.get(day_key(key)) for key in keys]

    def account_micro(self, account_id: str, start_ms: int, end_ms: int) -> int:
        """See :class:`StateReader`."""
        total = 0
        for raw, value in self.usage.items():
            key, usage = parse_day_key(raw), decode_day(value)
            if key.account_id != account_id:
                continue
            base = key.day * DAY_MS
            total += sum(
                bucket.micro
                for slot, bucket in usage.slots.items()
                if start_ms <= base + slot * BUCKET_MS < end_ms
            )
        return total

    def write(
        self,
        days: Iterable[tuple[DayKey, bytes]],
        ids: Iterable[bytes],
        expired_before_day: int | None = None,
    ) -> None:
        """Store an outcome's days and ids, then drop whole days before ``expired_before_day``."""
        for key, value in days:
            self.usage[day_key(key)] = value
        self.ids.update(ids)
        if expired_before_day is not None:
            _, end = day_range(0, expired_before_day)
            self.ids = {key for key in self.ids if key[:DAY_PREFIX] >= end}
            self.usage = {key: u for key, u in self.usage.items() if key[:DAY_PREFIX] >= end}
