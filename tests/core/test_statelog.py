"""The state log: deltas, snapshots and tombstones, and folding them back into a state."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from core.buckets import bucket_start
from core.partition import BucketValue, Limits, PartitionState, SourceRecord
from core.statelog import FORMAT_VERSION, StateFolder, delta_record, snapshot_records
from tests.core.support import DAY, FAST, HOUR, MINUTE, T0, ev, local_only, rec

M = MINUTE
LIMITS = Limits()

Log = list[tuple[bytes, bytes | None]]


def _records(count: int, start: int = 0, accounts: int = 2) -> list[SourceRecord]:
    """Records ``start..start+count-1``, each with two events over a few buckets and apps."""
    out = []
    for offset in range(start, start + count):
        items = [
            ev(f"e{offset}", T0 + (offset % 5) * 7 * M, app=f"app{offset % 3}"),
            ev(f"e{offset}", T0 + offset * M, account=f"acct{offset % accounts}"),
        ]
        out.append(rec(offset, T0 + offset * M, items))
    return out


def _writer(
    records: list[SourceRecord], cuts: list[int], state: PartitionState | None = None
) -> tuple[PartitionState, Log]:
    """Apply records in batches split at ``cuts``; return the state and the deltas written."""
    state = state or PartitionState(0, LIMITS)
    log: Log = []
    for lo, hi in zip([0, *cuts], [*cuts, len(records)], strict=True):
        outcome = state.apply(records[lo:hi], local_only)
        if outcome.applied_anything:
            log.append(delta_record(outcome, state.watermark_ms))
    return state, log


def _fold(log: Log, partition: int = 0, limits: Limits = LIMITS) -> StateFolder:
    folder = StateFolder.new(partition, limits)
    for key, value in log:
        folder.feed(key, value)
    return folder


def _same_state(folded: PartitionState, live: PartitionState) -> None:
    assert folded.applied == live.applied
    assert folded.watermark_ms == live.watermark_ms
    assert folded.buckets == live.buckets
    assert sorted(folded.seen.items()) == sorted(live.seen.items())
    assert len(folded.seen) == len(live.seen)


# ------------------------------------------------------------------ deltas


def test_delta_record_format() -> None:
    state = PartitionState(0, LIMITS)
    outcome = state.apply(
        [rec(0, T0, ev("e1", T0, credits="1.5")), rec(1, T0 + 5, ev("e2", T0, app="x"))],
        local_only,
    )
    key, value = delta_record(outcome, state.watermark_ms)
    assert key == b"d:-1:1"
    version, s, e, wm, buckets, ids, totals, fired = json.loads(value)
    assert (totals, fired) == ([], [])  # no contract, so no period accounting
    assert (version, s, e, wm) == (FORMAT_VERSION, -1, 1, T0 + 5)
    assert sorted(map(tuple, buckets)) == [
        ("acme", "bot", T0, 1, 1_500_000, 0),
        ("acme", "x", T0, 1, 1_000_000, 1),
    ]
    assert {account: sorted(map(tuple, entries)) for account, entries in ids.items()} == {
        "acme": [("e1", T0), ("e2", T0)]
    }


def test_folding_deltas_reproduces_the_state() -> None:
    live, log = _writer(_records(30), [1, 5, 6, 17, 29])
    assert [key for key, _ in log] == [
        b"d:-1:0",
        b"d:0:4",
        b"d:4:5",
        b"d:5:16",
        b"d:16:28",
        b"d:28:29",
    ]
    folder = _fold(log)
    _same_state(folder.state, live)
    assert folder.live_keys == {key for key, _ in log}
    assert folder.bytes_since_snapshot == sum(len(value or b"") for _, value in log)


def test_folded_state_continues_exactly_like_the_live_one() -> None:
    records = _records(20)
    live, log = _writer(records[:12], [4, 9])
    folder = _fold(log)
    more = records[8:]  # 8..11 replayed (not committed before the crash), then new ones
    a = live.apply(more, local_only)
    b = folder.state.apply(more, local_only)
    assert a == b
    assert a.replayed == 4
    _same_state(folder.state, live)


def test_stale_delta_from_a_zombie_is_ignored() -> None:
    records = _records(10)
    live, log = _writer(records, [6])  # deltas (-1,5] and (5,9]
    zombie, zombie_log = _writer(records[:4], [])  # an old writer's (-1,3]
    folder = _fold([*log, *zombie_log])  # e=3 <= applied=9: ignored
    _same_state(folder.state, live)
    # Its lower absolute values did not overwrite the newer ones.
    key = ("acme", "app0", T0)  # offsets 0 and 6; the zombie only saw offset 0
    assert zombie.buckets[key] == [1, 1_000_000, 0]
    assert folder.state.buckets[key] == [2, 2_000_000, 6]


def test_overlapping_delta_from_a_zombie_is_harmless() -> None:
    records = _records(16)
    # The real writer: (-1,5], (5,10], then later (10,15].
    real, real_log = _writer(records[:11], [6])
    # A zombie that still owns the partition from offset 5 processes 6..12 as one batch.
    zombie_state = PartitionState(0, LIMITS)
    zombie_state.apply(records[:6], local_only)
    overlap = zombie_state.apply(records[6:13], local_only)
    zombie_delta = delta_record(overlap, zombie_state.watermark_ms)
    assert zombie_delta[0] == b"d:5:12"

    folder = _fold([*real_log, zombie_delta])  # 5 <= 10 < 12: applied
    reference = PartitionState(0, LIMITS)
    reference.apply(records[:13], local_only)
    _same_state(folder.state, reference)

    # The real writer's next delta (10,15] now overlaps from behind: 10 <= 12 < 15, also
    # harmless since both computed the same deterministic values.
    tail = real.apply(records[11:16], local_only)
    folder.feed(*delta_record(tail, real.watermark_ms))
    _same_state(folder.state, real)


def test_gap_delta_is_ignored() -> None:
    records = _records(12)
    _, head = _writer(records[:4], [])  # (-1,3]
    later_state = PartitionState(0, LIMITS)
    later_state.apply(records[:8], local_only)
    gap = later_state.apply(records[8:12], local_only)  # (7,11]: offsets 4..7 missing
    folder = _fold([*head, delta_record(gap, later_state.watermark_ms)])
    expected = PartitionState(0, LIMITS)
    expected.apply(records[:4], local_only)
    _same_state(folder.state, expected)
    assert folder.state.applied == 3


def test_delta_rule_boundaries() -> None:
    base, log = _writer(_records(3), [])  # (-1,2]
    folder = _fold(log)
    assert folder.state.applied == 2

    def delta(s: int, e: int) -> tuple[bytes, bytes]:
        value = json.dumps([1, s, e, T0, [["acme", "bot", 0, s, e, e]], {}]).encode()
        return f"d:{s}:{e}".encode(), value

    folder.feed(*delta(2, 2))  # empty: s <= applied but not applied < e
    folder.feed(*delta(3, 5))  # gap: s > applied
    folder.feed(*delta(-1, 2))  # stale: e == applied
    assert folder.state.applied == 2
    assert ("acme", "bot", 0) not in folder.state.buckets
    folder.feed(*delta(2, 3))  # s == applied: the normal case
    assert folder.state.applied == 3
    assert folder.state.buckets[("acme", "bot", 0)] == [2, 3, 3]
    folder.feed(*delta(0, 7))  # s < applied < e: overlapping, applied
    assert folder.state.applied == 7
    assert folder.state.buckets[("acme", "bot", 0)] == [0, 7, 7]


def test_watermark_of_a_delta_never_moves_the_folded_watermark_back() -> None:
    folder = StateFolder.new(0, LIMITS)
    folder.feed(b"d:-1:0", json.dumps([1, -1, 0, T0 + HOUR, [], {}]).encode())
    folder.feed(b"d:0:1", json.dumps([1, 0, 1, T0, [], {}]).encode())
    assert folder.state.applied == 1
    assert folder.state.watermark_ms == T0 + HOUR


def test_fold_after_evictions_keeps_at_most_unreachable_extras() -> None:
    # Deltas never say "evict"; a folded state may still hold buckets below the floor until the
    # next eviction. Those are unreachable (any event for them is too late), and equal
    # otherwise.
    limits = Limits(late_horizon_ms=HOUR)
    records = [rec(i, T0 + i * 10 * M, ev(f"e{i}", T0 + i * 10 * M - 2 * M)) for i in range(20)]
    live = PartitionState(0, limits)
    log: Log = []
    for i in range(0, 20, 3):
        log.append(delta_record(live.apply(records[i : i + 3], local_only), live.watermark_ms))
    folded = _fold(log, limits=limits).state
    cutoff = bucket_start(live.floor_ms)
    assert {k: v for k, v in folded.buckets.items() if k[2] >= cutoff} == live.buckets
    assert all(key[2] < cutoff for key in folded.buckets.keys() - live.buckets.keys())
    assert folded.buckets.keys() - live.buckets.keys()  # the case this test is about
    assert (folded.applied, folded.watermark_ms) == (live.applied, live.watermark_ms)
    # The next record that moves the floor's bucket makes them equal.
    nxt = [rec(20, T0 + 200 * M + 15 * M, ev("e20", T0 + 214 * M))]
    live.apply(nxt, local_only)
    folded.apply(nxt, local_only)
    assert folded.buckets == live.buckets
    assert sorted(folded.seen.items()) == sorted(live.seen.items())


# ------------------------------------------------------------------ snapshots


def _rich_state() -> PartitionState:
    state, _ = _writer(_records(25, accounts=3), [10])
    assert len(state.buckets) > 5
    assert len(state.seen) > 5
    return state


def test_snapshot_records_are_chunked_with_counted_keys() -> None:
    state = _rich_state()
    chunks = snapshot_records(state, chunk_items=4, nonce="n1")
    n_buckets, n_ids = len(state.buckets), len(state.seen)
    total = -(-n_buckets // 4) + -(-n_ids // 4)
    assert len(chunks) == total
    assert [key for key, _ in chunks] == [
        f"s:{state.applied}:n1:{i}:{total}".encode() for i in range(total)
    ]
    for _, value in chunks:
        version, e, wm, n, buckets, ids, _totals, _fired = json.loads(value)
        assert (version, e, wm, n) == (FORMAT_VERSION, state.applied, state.watermark_ms, total)
        assert len(buckets) + sum(len(v) for v in ids.values()) <= 4


def test_snapshot_of_an_empty_state_is_one_record() -> None:
    chunks = snapshot_records(PartitionState(0, LIMITS), nonce="n1")
    assert [key for key, _ in chunks] == [b"s:-1:n1:0:1"]


def test_complete_snapshot_replaces_the_state_in_any_chunk_order() -> None:
    state = _rich_state()
    chunks = snapshot_records(state, chunk_items=3)
    random.Random(7).shuffle(chunks)
    # A folder that holds a stale, different state (junk bucket, lower offset).
    folder = StateFolder.new(0, LIMITS)
    folder.feed(b"d:-1:0", json.dumps([1, -1, 0, 5, [["junk", "x", 0, 1, 1, 0]], {}]).encode())
    assert folder.bytes_since_snapshot > 0
    for key, value in chunks:
        folder.feed(key, value)
    _same_state(folder.state, state)
    assert ("junk", "x", 0) not in folder.state.buckets
    assert folder.bytes_since_snapshot == 0
    assert folder.state is not state


def test_incomplete_snapshot_is_ignored() -> None:
    state = _rich_state()
    chunks = snapshot_records(state, chunk_items=3)
    assert len(chunks) > 2
    live, log = _writer(_records(5), [])
    folder = _fold(log)
    for key, value in chunks[:-1]:  # the writer died before the last chunk
        folder.feed(key, value)
    _same_state(folder.state, live)
    # Deltas keep applying on top.
    more = live.apply(_records(3, start=5), local_only)
    folder.feed(*delta_record(more, live.watermark_ms))
    _same_state(folder.state, live)


def test_snapshot_not_newer_than_the_state_is_ignored() -> None:
    live, log = _writer(_records(10), [])
    old_state, _ = _writer(_records(4), [])
    folder = _fold(log)
    for key, value in snapshot_records(old_state, chunk_items=2):
        folder.feed(key, value)
    _same_state(folder.state, live)


def test_snapshot_then_later_deltas() -> None:
    records = _records(20)
    live, first = _writer(records[:10], [5])
    snapshot = snapshot_records(live, chunk_items=5)
    after: Log = []
    for lo, hi in ((10, 14), (14, 20)):
        outcome = live.apply(records[lo:hi], local_only)
        after.append(delta_record(outcome, live.watermark_ms))
    # The log as written, then as compacted (the pre-snapshot deltas tombstoned and gone).
    tombstones: Log = [(key, None) for key, _ in first]
    written = [*first, *snapshot, *tombstones, *after]
    folder = _fold(written)
    _same_state(folder.state, live)
    assert folder.live_keys == {key for key, _ in [*snapshot, *after]}
    _same_state(_fold([*snapshot, *after]).state, live)


# ------------------------------------------------------------------ tombstones


def test_tombstones_only_forget_keys() -> None:
    live, log = _writer(_records(6), [3])
    folder = _fold(log)
    before = {k: list(v) for k, v in folder.state.buckets.items()}
    folder.feed(log[0][0], None)
    folder.feed(b"d:never:written", None)  # unknown key: fine
    assert folder.live_keys == {log[1][0]}
    assert folder.state.buckets == before
    assert folder.state.applied == live.applied


def test_unknown_record_kinds_are_kept_as_live_keys_only() -> None:
    folder = StateFolder.new(0, LIMITS)
    folder.feed(b"x:future-format", b"{}")
    assert folder.live_keys == {b"x:future-format"}
    assert folder.state.applied == -1


# ------------------------------------------------------------------ generated logs


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[SourceRecord], list[int], int | None]:
    count = draw(st.integers(min_value=1, max_value=20))
    records = []
    clock = 0
    for offset in range(count):
        clock += draw(st.integers(min_value=0, max_value=3 * 60))
        items: list[dict[str, Any]] = [
            ev(
                f"e{draw(st.integers(0, 40))}",  # ids collide: retries
                T0 + clock * M - draw(st.integers(0, 40 * 24 * 60)) * M,  # some too late
                account=draw(st.sampled_from(["acme", "globex"])),
                app=draw(st.sampled_from(["a", "b", "c"])),
                credits=str(draw(st.integers(0, 10**6))),
            )
            for _ in range(draw(st.integers(1, 3)))
        ]
        records.append(rec(offset, T0 + clock * M, items))
    cuts = sorted(set(draw(st.lists(st.integers(1, count), max_size=6))))
    snapshot_after = draw(st.none() | st.integers(0, len(cuts)))
    return records, cuts, snapshot_after


@FAST
@given(histories())
def test_fold_of_any_history_equals_the_live_state(
    history: tuple[list[SourceRecord], list[int], int | None],
) -> None:
    records, cuts, snapshot_after = history
    live = PartitionState(0, LIMITS)
    log: Log = []
    live_keys: set[bytes] = set()
    for n, (lo, hi) in enumerate(zip([0, *cuts], [*cuts, len(records)], strict=True)):
        outcome = live.apply(records[lo:hi], local_only)
        if outcome.applied_anything:
            log.append(delta_record(outcome, live.watermark_ms))
            live_keys.add(log[-1][0])
        if n == snapshot_after:
            snapshot = snapshot_records(live, chunk_items=5)
            log += snapshot
            log += [(key, None) for key in sorted(live_keys - {k for k, _ in snapshot})]
            live_keys = {k for k, _ in snapshot}
    folded = _fold(log).state
    cutoff = bucket_start(live.floor_ms)
    assert {k: v for k, v in folded.buckets.items() if k[2] >= cutoff} == live.buckets
    assert all(k[2] < cutoff for k in folded.buckets.keys() - live.buckets.keys())
    assert {i for i in folded.seen.items() if i[2] >= cutoff} == set(live.seen.items())
    assert (folded.applied, folded.watermark_ms) == (live.applied, live.watermark_ms)

    # Kafka compaction keeps the last record of each key and drops tombstoned keys.
    last: dict[bytes, tuple[int, bytes | None]] = {}
    for position, (key, value) in enumerate(log):
        last[key] = (position, value)
    compacted = [(k, v) for k, (_, v) in sorted(last.items(), key=lambda kv: kv[1][0]) if v]
    refolded = _fold(compacted).state
    assert {k: v for k, v in refolded.buckets.items() if k[2] >= cutoff} == live.buckets
    assert (refolded.applied, refolded.watermark_ms) == (live.applied, live.watermark_ms)


def test_bucket_values_survive_the_round_trip_exactly() -> None:
    state = PartitionState(0, LIMITS)
    huge = 10**15 * 7 + 123_456  # sums beyond a double's 53 bits stay exact
    state.restore_buckets([(("acme", "bot", T0), BucketValue(2**40, huge, 99))])
    state.applied = 99
    state.watermark_ms = T0 + DAY
    folder = _fold(snapshot_records(state))
    assert folder.state.buckets == {("acme", "bot", T0): [2**40, huge, 99]}
    assert folder.state.watermark_ms == T0 + DAY


def test_snapshots_of_two_writers_at_one_offset_do_not_mix() -> None:
    state = _rich_state()
    mine = snapshot_records(state, chunk_items=3, nonce="a")
    theirs = snapshot_records(state, chunk_items=5, nonce="b")  # split differently
    folder = StateFolder.new(0, LIMITS)
    for key, value in [mine[0], theirs[1], *theirs[2:], *mine[1:]]:
        folder.feed(key, value)
    _same_state(folder.state, state)


def test_snapshot_pieces_are_bounded_by_bytes() -> None:
    state = _rich_state()
    chunks = snapshot_records(state, chunk_bytes=300, nonce="x")
    assert len(chunks) > 2
    assert all(len(value) < 2_000 for _, value in chunks)
    folder = StateFolder.new(0, LIMITS)
    for key, value in chunks:
        folder.feed(key, value)
    _same_state(folder.state, state)
