"""Which input partition an account lives on: Kafka's default partitioner over the account id."""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2

__all__ = ("account_partition",)


@lru_cache(maxsize=65_536)
def account_partition(account_id: str, partitions: int) -> int:
    """Partition of ``account_id`` among ``partitions``, as Java and aiokafka producers pick it."""
    return int(murmur2(account_id.encode()) & 0x7FFFFFFF) % partitions
