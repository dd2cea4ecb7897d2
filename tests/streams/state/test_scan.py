"""Bounded and open-ended scans of a partition store (real RocksDB, no broker).

An open-ended scan once yielded nothing (rocksdict drops every item when an iterator has a
lower bound and no upper one): the outbox, the ledger and the days after a restore read back
empty after every restart.
"""

from __future__ import annotations

from pathlib import Path

from streams.state.store import PartitionStore, StoreBudget

BUDGET = StoreBudget(8 * 2**20, 8 * 2**20)


def _store(path: Path) -> PartitionStore:
    store = PartitionStore.open(path, BUDGET)
    batch = store.batch()
    for key in (b"\x00a", b"\x01b", b"\x02c"):
        batch.put("outbox", key, key * 2)
    store.write(batch)
    return store


def test_open_ended_scans_see_every_key_from_their_start(tmp_path: Path) -> None:
    store = _store(tmp_path / "p0")
    try:
        assert [k for k, _ in store.scan("outbox")] == [b"\x00a", b"\x01b", b"\x02c"]
        assert [k for k, _ in store.scan("outbox", b"\x01")] == [b"\x01b", b"\x02c"]
        assert [k for k, _ in store.scan("outbox", b"", b"\x02")] == [b"\x00a", b"\x01b"]
        assert [k for k, _ in store.scan("outbox", b"\x01", b"\x02")] == [b"\x01b"]
    finally:
        store.close()


def test_what_a_store_holds_reads_back_after_a_reopen(tmp_path: Path) -> None:
    _store(tmp_path / "p0").close()
    store = PartitionStore.open(tmp_path / "p0", BUDGET)
    try:
        assert dict(store.scan("outbox")) == {
            b"\x00a": b"\x00a\x00a",
            b"\x01b": b"\x01b\x01b",
            b"\x02c": b"\x02c\x02c",
        }
    finally:
        store.close()
