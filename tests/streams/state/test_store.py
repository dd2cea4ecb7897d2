"""The partition store on real RocksDB (in tmp_path): options, reopen, scans, reads, expiry."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.days import DAY_MS, Bucket, DayKey, DayUsage
from core.state import MemoryState
from core.statecodec import day_key, encode_day, id_key
from streams.state.store import Fence, PartitionStore, StoreFormatError
from tests.core.support import FAST, T0
from tests.streams.state.support import FAMILIES, budget, dump

D27 = T0 // DAY_MS
TAG = b"tag1"


def _table_options(log: str) -> dict[str, tuple[int, str]]:
    """``family -> (block cache capacity, filter policy)`` from a RocksDB LOG."""
    found: dict[str, tuple[int, str]] = {}
    sections = re.split(r"-+ Options for column family \[([^\]]+)\]:", log)
    for name, body in zip(sections[1::2], sections[2::2], strict=True):
        capacity = re.search(r"capacity : (\d+)", body)
        policy = re.search(r"filter_policy: (\S+)", body)
        assert capacity is not None and policy is not None
        found[name] = (int(capacity.group(1)), policy.group(1))
    return found


def test_a_new_store_has_its_families_and_no_fence(tmp_path: Path) -> None:
    store = PartitionStore.open(tmp_path / "p0", budget())
    assert store.fence() == Fence(-1, 0, 0, -1)
    assert dump(store) == {family: {} for family in FAMILIES}
    store.close()


def test_reopen_keeps_data_fence_and_the_configured_options(tmp_path: Path) -> None:
    # quix-streams #1136: opening an existing store without every family's options falls
    # back to an 8 MiB cache and no bloom filter. The budget's 7 MiB tells them apart.
    path = tmp_path / "p0"
    store = PartitionStore.open(path, budget())
    batch = store.batch()
    batch.put("ids", id_key(D27, "acme", "e1"), b"")
    batch.put("days", day_key(DayKey("acme", "bot", D27)), TAG + encode_day(DayUsage(3, {})))
    PartitionStore.stage_fence(batch, Fence(3, T0, D27 - 35, 12))
    store.write(batch)
    before = dump(store)
    assert before["ids"] == {id_key(D27, "acme", "e1"): b""}
    assert len(before["days"]) == len(before["meta"]) == 1
    store.close()

    again = PartitionStore.open(path, budget())
    assert dump(again) == before
    assert again.fence() == Fence(3, T0, D27 - 35, 12)
    options = _table_options((path / "LOG").read_text())
    assert {name: options[name] for name in FAMILIES} == {
        name: (7 * 2**20, "bloomfilter") for name in FAMILIES
    }
    latest = max(path.glob("OPTIONS-*"), key=lambda p: int(p.name.split("-")[1]))
    text = latest.read_text()
    for name in FAMILIES:
        table = text.split(f'[TableOptions/BlockBasedTable "{name}"]')[1].split("[")[0]
        assert "partition_filters=true" in table
        assert "index_type=kTwoLevelIndexSearch" in table
        assert "cache_index_and_filter_blocks=true" in table
        family = text.split(f'[CFOptions "{name}"]')[1].split("[")[0]
        assert "compression=kLZ4Compression" in family
    ids = text.split('[CFOptions "ids"]')[1].split("[")[0]
    # A new id is looked up once and is usually absent: the memtable's own bloom filter
    # answers that without a skiplist seek.
    assert "memtable_whole_key_filtering=true" in ids
    assert "memtable_prefix_bloom_size_ratio=0.05" in ids
    again.close()


def test_a_store_of_another_format_is_refused_and_can_be_destroyed(tmp_path: Path) -> None:
    path = tmp_path / "p0"
    store = PartitionStore.open(path, budget())
    batch = store.batch()
    batch.put("meta", b"fence", msgspec.msgpack.encode((1, 5, 0, 0, 9)))
    store.write(batch)
    store.close()
    with pytest.raises(StoreFormatError, match="another format"):
        PartitionStore.open(path, budget())
    PartitionStore.destroy(path)
    fresh = PartitionStore.open(path, budget())  # the lock was released with the refusal
    assert fresh.fence() == Fence(-1, 0, 0, -1)
    fresh.close()


def test_one_process_holds_a_store_at_a_time(tmp_path: Path) -> None:
    store = PartitionStore.open(tmp_path / "p0", budget())
    with pytest.raises(Exception, match=r"(?i)lock"):
        PartitionStore.open(tmp_path / "p0", budget())
    store.close()
    PartitionStore.open(tmp_path / "p0", budget()).close()


def test_scan_reads_a_whole_family_or_a_key_range(tmp_path: Path) -> None:
    store = PartitionStore.open(tmp_path / "p0", budget())
    keys = [id_key(day, "acme", f"e{day}") for day in (D27 - 2, D27 - 1, D27, D27 + 1)]
    batch = store.batch()
    for key in keys:
        batch.put("ids", key, b"")
    store.write(batch)
    assert [key for key, _ in store.scan("ids")] == keys
    begin, end = keys[1][:4], keys[3][:4]
    assert [key for key, _ in store.scan("ids", begin, end)] == keys[1:3]
    assert [key for key, _ in store.scan("ids", begin)] == keys[1:]
    assert [key for key, _ in store.scan("ids", b"", end)] == keys[:3]
    store.close()


def test_a_batch_is_invisible_until_written(tmp_path: Path) -> None:
    store = PartitionStore.open(tmp_path / "p0", budget())
    batch = store.batch()
    batch.put("ids", b"k", b"")
    batch.delete("ids", b"gone")
    batch.delete_range("days", b"a", b"b")
    assert batch.ops == 3
    assert store.get("ids", b"k") is None
    store.write(batch)
    assert store.get("ids", b"k") == b""
    store.close()


DAYS = st.dictionaries(
    st.builds(
        DayKey, st.sampled_from(["acme", "globex"]), st.sampled_from(["a", "b"]), st.integers(0, 3)
    ),
    st.builds(
        DayUsage,
        st.integers(0, 100),
        st.dictionaries(
            st.integers(0, 95), st.builds(Bucket, st.integers(0, 9), st.integers(0, 10**12))
        ),
    ),
)


@FAST
@given(
    days=DAYS,
    ids=st.sets(st.tuples(st.integers(0, 3), st.sampled_from(["acme", "x"]), st.text(max_size=3))),
    probes=st.lists(
        st.tuples(st.sampled_from(["acme", "globex", "other"]), st.integers(-5, 5 * 96)),
        max_size=5,
    ),
)
def test_reads_answer_like_the_memory_state(
    days: dict[DayKey, DayUsage],
    ids: set[tuple[int, str, str]],
    probes: list[tuple[str, int]],
) -> None:
    base = (D27 - 2) * DAY_MS
    shifted = {key._replace(day=key.day + D27 - 2): usage for key, usage in days.items()}
    id_keys = [id_key(day + D27 - 2, account, event) for day, account, event in ids]
    memory = MemoryState()
    memory.write([(key, encode_day(usage)) for key, usage in shifted.items()], id_keys)
    with tempfile.TemporaryDirectory() as directory:
        store = PartitionStore.open(Path(directory), budget())
        batch = store.batch()
        for key, usage in shifted.items():
            batch.put("days", day_key(key), TAG + encode_day(usage))
        for key in id_keys:
            batch.put("ids", key, b"")
        store.write(batch)
        wanted = [*shifted, DayKey("acme", "zz", D27)]
        assert store.day_values(wanted) == memory.day_values(wanted)
        probe_ids = [*id_keys, id_key(D27, "acme", "never")]
        assert [x is not None for x in store.seen(probe_ids)] == [
            x is not None for x in memory.seen(probe_ids)
        ]
        for account, slot in probes:
            for width in (1, 7, 96, 300):
                start = base + slot * 900_000
                end = start + width * 900_000
                assert store.account_micro(account, start, end) == memory.account_micro(
                    account, start, end
                )
        store.close()


def test_expiry_drops_whole_days_of_ids_days_and_outbox(tmp_path: Path) -> None:
    store = PartitionStore.open(tmp_path / "p0", budget())
    batch = store.batch()
    for day in (D27 - 1, D27, D27 + 1):
        batch.put("ids", id_key(day, "acme", "e"), b"")
        batch.put("days", day_key(DayKey("acme", "bot", day)), TAG + encode_day(DayUsage(1, {})))
        batch.put("outbox", day_key(DayKey("acme", "bot", day)), b"x" * 16)
    batch.put("meta", b"fence", msgspec.msgpack.encode((2, 0, 0, 0, 0)))
    store.write(batch)
    batch = store.batch()
    PartitionStore.stage_expiry(batch, D27 + 1)
    store.write(batch)
    for family in ("ids", "days", "outbox"):
        assert [key[:4] for key, _ in store.scan(family)] == [(D27 + 1).to_bytes(4, "big")]
    assert store.get("meta", b"fence") is not None  # other families untouched
    store.compact_expired(D27 + 1)
    assert store.day_values([DayKey("acme", "bot", D27)]) == [None]
    store.close()
