"""Remembered event ids, the dedup half of exactly-once.

An id is ``(account_id, event_id)``. Each is remembered with the start of the bucket its event
fell in, and forgotten once that bucket is older than the late horizon: any resend of such an
event is rejected as too late before dedup is consulted, so forgetting it cannot let a duplicate
through. Expiry therefore follows event time and the partition's watermark, never a wall clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ("SeenIds",)


class SeenIds:
    """Per-account dictionaries of ``event_id -> bucket start (epoch ms)``."""

    __slots__ = ("_buckets", "_by_account", "_size")

    def __init__(self) -> None:
        self._by_account: dict[str, dict[str, int]] = {}
        self._buckets: dict[int, int] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, account_id: str, event_id: str, bucket_ms: int) -> bool:
        """Remember an id; return False when it was already known (a duplicate)."""
        ids = self._by_account.get(account_id)
        if ids is None:
            ids = self._by_account[account_id] = {}
        elif event_id in ids:
            return False
        # One int object per bucket start instead of one per id: about 32 bytes less per id.
        ids[event_id] = self._buckets.setdefault(bucket_ms, bucket_ms)
        self._size += 1
        return True

    def ids_of(self, account_id: str) -> dict[str, int]:
        """The account's ``event_id -> bucket`` dict, for the worker's per-event loop.

        Whoever adds to it directly must intern the bucket with :meth:`bucket` and report the
        count with :meth:`count_added`; :meth:`add` does all three for one id.
        """
        ids = self._by_account.get(account_id)
        if ids is None:
            ids = self._by_account[account_id] = {}
        return ids

    def bucket(self, bucket_ms: int) -> int:
        """The shared int object for a bucket start."""
        return self._buckets.setdefault(bucket_ms, bucket_ms)

    def count_added(self, count: int) -> None:
        """Account for ids added through :meth:`ids_of`."""
        self._size += count

    def __contains__(self, key: tuple[str, str]) -> bool:
        ids = self._by_account.get(key[0])
        return ids is not None and key[1] in ids

    def forget_before(self, cutoff_ms: int) -> int:
        """Forget ids whose bucket starts before ``cutoff_ms``; return how many were dropped."""
        dropped = 0
        for account_id in list(self._by_account):
            ids = self._by_account[account_id]
            stale = [event_id for event_id, bucket in ids.items() if bucket < cutoff_ms]
            for event_id in stale:
                del ids[event_id]
            dropped += len(stale)
            if not ids:
                del self._by_account[account_id]
        for bucket in [bucket for bucket in self._buckets if bucket < cutoff_ms]:
            del self._buckets[bucket]
        self._size -= dropped
        return dropped

    def items(self) -> Iterator[tuple[str, str, int]]:
        """Every remembered id as ``(account_id, event_id, bucket_ms)``."""
        for account_id, ids in self._by_account.items():
            for event_id, bucket in ids.items():
                yield account_id, event_id, bucket

    def update(self, entries: Iterable[tuple[str, str, int]]) -> None:
        """Remember many ids at once (used when state is restored)."""
        for account_id, event_id, bucket in entries:
            self.add(account_id, event_id, bucket)
