"""One input partition's state on local disk: a RocksDB database through ``rocksdict``.

Column families (keys from :mod:`core.statecodec`, day first, so an expired day is one range):

* ``ids``     remembered ids, no values (bloom filters make the common miss cheap);
* ``days``    writer tag + a day's usage;
* ``ledger``  period totals (``p`` + period key) and fired thresholds (``f`` + alert key);
* ``outbox``  days whose latest value is not yet in the bucket topic and the view, with the
  first input offset that changed them since;
* ``meta``    the fence (format, applied offset, watermark, first live day, state-log offset)
  and the id segment counters of each (day, writer tag).

Every write is one ``WriteBatch`` across column families: RocksDB applies it atomically, so
the fence and the state it describes never disagree, whatever kills the process when.

Memory is bounded by settings, not by the number of ids: one block cache and one write-buffer
budget are shared by every partition of the process, filters and indexes are charged to the
cache, and the filters' top level stays pinned so negative lookups stay cheap.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple, cast

import msgspec
from rocksdict import (
    AccessType,
    BlockBasedIndexType,
    BlockBasedOptions,
    Cache,
    ColumnFamily,
    DBCompressionType,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteBufferManager,
)

from core.buckets import BUCKET_MS
from core.days import DAY_MS, DayKey
from core.statecodec import (
    FORMAT_VERSION,
    TAG_BYTES,
    counter_key,
    day_key,
    day_range,
    decode_day,
)

__all__ = ("Fence", "PartitionStore", "StoreBatch", "StoreBudget", "StoreFormatError")

_COLUMN_FAMILIES = ("ids", "days", "ledger", "outbox", "meta")
_FENCE = b"fence"
_TAG = b"tag"
_encode = msgspec.msgpack.encode
_fence_decoder = msgspec.msgpack.Decoder(tuple[int, int, int, int, int])


class StoreFormatError(RuntimeError):
    """The local store was written by another layout version: it must be rebuilt."""


class Fence(NamedTuple):
    """Where a partition's local state stands."""

    applied: int
    """Last input offset applied."""
    watermark_ms: int
    first_day: int
    state_log_offset: int
    """Last state-log offset reflected (its own writes and what it restored)."""


class StoreBudget:
    """The memory every partition store of one process shares.

    One block cache and one write-buffer budget (charged to that cache), whatever the number
    of partitions or ids.
    """

    def __init__(self, block_cache_bytes: int, write_buffer_bytes: int) -> None:
        self.block_cache_bytes = block_cache_bytes
        self.write_buffer_bytes = write_buffer_bytes
        self._cache = Cache(block_cache_bytes)
        self._buffers = WriteBufferManager.new_write_buffer_manager_with_cache(
            write_buffer_bytes, False, self._cache
        )

    def options(self) -> tuple[Options, dict[str, Options]]:
        """Database and per-column-family options, all on the shared cache and budget.

        Passed for every column family on every open: rocksdict otherwise reloads them from
        the OPTIONS file with an 8 MiB cache and no bloom filter (quix-streams #1136).
        Filters are partitioned and charged to the cache with their top level pinned, so
        their memory stays within the cache however many ids there are.
        """
        families = {}
        for name in _COLUMN_FAMILIES:
            table = BlockBasedOptions()
            table.set_block_cache(self._cache)
            table.set_bloom_filter(10, False)
            table.set_cache_index_and_filter_blocks(True)
            table.set_pin_l0_filter_and_index_blocks_in_cache(True)
            table.set_index_type(BlockBasedIndexType.two_level_index_search())
            table.set_partition_filters(True)
            table.set_pin_top_level_index_and_filter(True)
            family = Options(raw_mode=True)
            family.set_block_based_table_factory(table)
            family.set_compression_type(DBCompressionType.lz4())
            family.set_write_buffer_manager(self._buffers)
            family.set_write_buffer_size(min(16 * 2**20, self.write_buffer_bytes // 4))
            if name == "ids":
                # Most id lookups are misses: a bloom filter over the memtable's whole keys
                # answers them without a skiplist seek (within the write-buffer budget).
                family.set_memtable_prefix_bloom_ratio(0.05)
                family.set_memtable_whole_key_filtering(True)
            families[name] = family
        db = Options(raw_mode=True)
        db.create_if_missing(True)
        db.create_missing_column_families(True)
        db.set_write_buffer_manager(self._buffers)
        db.set_max_background_jobs(2)
        db.set_max_total_wal_size(64 * 2**20)
        db.set_max_open_files(256)
        return db, families


class StoreBatch:
    """Puts and deletes staged across column families, applied atomically by the store."""

    def __init__(self, handles: dict[str, ColumnFamily]) -> None:
        self._batch = WriteBatch(raw_mode=True)
        self._handles = handles
        self.ops = 0

    def put(self, family: str, key: bytes, value: bytes) -> None:
        """Stage a put."""
        self._batch.put(key, value, self._handles[family])
        self.ops += 1

    def put_keys(self, family: str, keys: Iterable[bytes]) -> None:
        """Stage many keys with empty values (remembered ids).

        The hot loop of a run and of a restore, so it calls RocksDB's batch directly.
        """
        put, handle = self._batch.put, self._handles[family]
        count = 0
        for key in keys:
            put(key, b"", handle)
            count += 1
        self.ops += count

    def delete(self, family: str, key: bytes) -> None:
        """Stage a delete."""
        self._batch.delete(key, self._handles[family])
        self.ops += 1

    def delete_range(self, family: str, begin: bytes, end: bytes) -> None:
        """Stage deleting every key in ``[begin, end)`` (one range tombstone)."""
        self._batch.delete_range(begin, end, self._handles[family])
        self.ops += 1


class PartitionStore:
    """Reads and atomic writes of one partition's local state (a :class:`StateReader`)."""

    def __init__(self, path: Path, db: Rdict) -> None:
        self.path = path
        self._db = db
        self._families = {name: db.get_column_family(name) for name in _COLUMN_FAMILIES}
        self._handles = {name: db.get_column_family_handle(name) for name in _COLUMN_FAMILIES}

    @classmethod
    def open(cls, path: Path, budget: StoreBudget) -> PartitionStore:
        """Open (or create) the store at ``path``; refuse one of another layout version."""
        path.mkdir(parents=True, exist_ok=True)
        options, families = budget.options()
        db = Rdict(
            str(path), options, column_families=families, access_type=AccessType.read_write()
        )
        store = cls(path, db)
        raw = store.get("meta", _FENCE)
        if raw is not None and _fence_decoder.decode(raw)[0] != FORMAT_VERSION:
            store.close()
            raise StoreFormatError(f"{path} holds state of another format; delete it to restore")
        return store

    @staticmethod
    def destroy(path: Path) -> None:
        """Delete a closed store (it will be restored from the state log)."""
        shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        """Flush and release the database (its lock too); column families go first."""
        self._families.clear()
        self._handles.clear()
        self._db.close()

    # ------------------------------------------------------------------ typed access

    def get(self, family: str, key: bytes) -> bytes | None:
        """One value."""
        return cast(bytes | None, self._families[family].get(key))

    def get_many(self, family: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values of many keys in one multi-get (it releases the GIL)."""
        if not keys:
            return []
        return cast(list[bytes | None], self._families[family].get(list(keys)))

    def scan(
        self, family: str, begin: bytes = b"", end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Every ``(key, value)`` of ``family`` in ``[begin, end)``, in key order.

        ``from_key`` is the lower bound: rocksdict 0.3's ``set_iterate_lower_bound`` sets the
        *upper* bound, which emptied every scan without an end.
        """
        options = ReadOptions()
        if end is not None:
            options.set_iterate_upper_bound(end)
        items = self._families[family].items(from_key=begin, read_opt=options)
        yield from cast(Iterator[tuple[bytes, bytes]], items)

    def batch(self) -> StoreBatch:
        """A new batch to stage writes in."""
        return StoreBatch(self._handles)

    def write(self, batch: StoreBatch) -> None:
        """Apply a staged batch atomically."""
        self._db.write(batch._batch)

    # ------------------------------------------------------------------ StateReader

    def seen(self, keys: Sequence[bytes]) -> Sequence[object | None]:
        """See :class:`core.state.StateReader`."""
        return self.get_many("ids", keys)

    def day_values(self, keys: Sequence[DayKey]) -> list[bytes | None]:
        """See :class:`core.state.StateReader` (the stored values without their writer tag)."""
        raws = self.get_many("days", [day_key(key) for key in keys])
        return [None if raw is None else raw[TAG_BYTES:] for raw in raws]

    def account_micro(self, account_id: str, start_ms: int, end_ms: int) -> int:
        """See :class:`core.state.StateReader`: one bounded scan per day of the range."""
        total = 0
        account = f"{account_id}\0".encode()
        for day in range(start_ms // DAY_MS, -(-end_ms // DAY_MS)):
            prefix = day_range(day, day + 1)[0] + account
            base = day * DAY_MS
            for _, raw in self.scan("days", prefix, prefix + b"\xff"):
                total += sum(
                    bucket.micro
                    for slot, bucket in decode_day(raw[TAG_BYTES:]).slots.items()
                    if start_ms <= base + slot * BUCKET_MS < end_ms
                )
        return total

    # ------------------------------------------------------------------ fence and expiry

    def fence(self) -> Fence:
        """The stored fence (a new store: nothing applied)."""
        raw = self.get("meta", _FENCE)
        if raw is None:
            return Fence(-1, 0, 0, -1)
        return Fence(*_fence_decoder.decode(raw)[1:])

    def take_tag(self, tag: bytes) -> bytes | None:
        """Record the writer tag of this incarnation; return the previous one (to retire)."""
        previous = self.get("meta", _TAG)
        batch = self.batch()
        batch.put("meta", _TAG, tag)
        self.write(batch)
        return previous

    @staticmethod
    def stage_fence(batch: StoreBatch, fence: Fence) -> None:
        """Stage the fence (in the same batch as the state it describes)."""
        batch.put("meta", _FENCE, _encode((FORMAT_VERSION, *fence)))

    @staticmethod
    def stage_expiry(batch: StoreBatch, before_day: int) -> None:
        """Stage dropping the ids, days, outbox entries and segment counters before a day."""
        begin, end = day_range(0, before_day)
        for family in ("ids", "days", "outbox"):
            batch.delete_range(family, begin, end)
        batch.delete_range("meta", counter_key(0, b""), counter_key(before_day, b""))

    def compact_expired(self, before_day: int) -> None:
        """Reclaim the disk of dropped days now (range deletes free space only on compaction)."""
        begin, end = day_range(0, before_day)
        for family in ("ids", "days"):
            self._families[family].compact_range(begin, end)
