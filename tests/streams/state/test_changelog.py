"""prepare_commit: a run's state-log records (tagged, ordered, per key) and its atomic batch."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import msgspec
import pytest

from core.billing import Monthly
from core.days import DAY_MS, DayKey
from core.ledger import PeriodKey
from core.partition import Limits
from core.statecodec import (
    DAY_PREFIX,
    FORMAT_VERSION,
    TAG_BYTES,
    Kind,
    day_key,
    day_of_key,
    decode_day,
    decode_total,
    parse_segment_key,
    period_key,
)
from streams.state import changelog
from streams.state.changelog import new_tag
from streams.state.store import Fence, PartitionStore
from tests.core.support import DAY, HOUR, MINUTE, T0, at, ev, rec, terms
from tests.streams.state.support import StateLog, Worker, budget, dump, lookup, stream

LIMITS = Limits(late_horizon_ms=DAY)
ACME = terms(allotment="8", period=Monthly(date(2026, 1, 1)))
D27 = T0 // DAY_MS
A, B = b"AAAA", b"BBBB"


def kinds(records: list[tuple[bytes, bytes | None]]) -> list[bytes]:
    """The kind of each record, runs of one kind collapsed (so the order reads plainly)."""
    out: list[bytes] = []
    for key, value in records:
        kind = key[:1] + (b"-" if value is None else b"")
        if not out or out[-1] != kind:
            out.append(kind)
    return out


def test_a_commit_publishes_tagged_days_totals_fired_ids_and_the_fence_last(
    tmp_path: Path,
) -> None:
    log = StateLog()
    # The default horizon: the period began after the first floor, so its total opens whole
    # and fires in this very commit (no seed from the view).
    worker = Worker(tmp_path / "p0", log, Limits(), terms_for=lookup(ACME), tag=A)
    _, commit = worker.prepare(stream(4))
    assert commit is not None
    # Fired marks before the totals that crossed them, totals before the days they count,
    # days before the ids that stand for them, the fence last: a log cut short anywhere
    # never holds a count without what depends on it (test_restore has the crash cases).
    assert kinds(commit.records) == [Kind.FIRED, Kind.TOTAL, Kind.DAY, Kind.IDS, Kind.FENCE]
    for key, value in commit.records:
        assert value is not None
        if key[:1] in (Kind.DAY, Kind.TOTAL, Kind.FENCE):
            assert key[1 : 1 + TAG_BYTES] == A
    fence_key, fence_value = commit.records[-1]
    assert fence_key == Kind.FENCE + A
    assert msgspec.msgpack.decode(fence_value or b"") == [
        FORMAT_VERSION,
        3,
        worker.state.watermark_ms,
        worker.state.first_day,
    ]
    days = {
        key[1 + TAG_BYTES :]: decode_day(value or b"")
        for key, value in commit.records
        if key[:1] == Kind.DAY
    }
    assert days == {day_key(k): v for k, v in worker.outcomes[-1].decoded_days().items()}
    (total,) = [(k, v) for k, v in commit.records if k[:1] == Kind.TOTAL]
    assert total[0] == Kind.TOTAL + A + period_key(
        PeriodKey("acme", at(2026, 11, 1), at(2026, 12, 1))
    )
    assert (
        decode_total(total[1] or b"").micro
        == worker.state.ledger.totals[PeriodKey("acme", at(2026, 11, 1), at(2026, 12, 1))].micro
    )
    segments = [parse_segment_key(k) for k, _ in commit.records if k[:1] == Kind.IDS]
    assert {(tag, seq) for _, tag, seq in segments} == {(A, 0)}
    worker.close()


def test_nothing_is_visible_in_the_store_before_the_batch_is_written(tmp_path: Path) -> None:
    log = StateLog()
    worker = Worker(tmp_path / "p0", log, LIMITS, tag=A)
    before = dump(worker.store)
    _, commit = worker.prepare(stream(3))
    assert commit is not None
    assert dump(worker.store) == before
    commit.finish(41)
    worker.store.write(commit.batch)
    assert worker.store.fence() == Fence(2, T0 + 6 * HOUR, worker.state.first_day, 41)
    assert len(dump(worker.store)["ids"]) == 7
    worker.close()


def test_ids_are_segmented_and_segments_numbered_on_across_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changelog, "_SEGMENT_IDS", 3)
    log = StateLog()
    worker = Worker(tmp_path / "p0", log, Limits(), tag=A)
    many = rec(0, T0, [ev(f"x{i}", T0) for i in range(7)])
    worker.run([many])
    worker.run([rec(1, T0, [ev(f"y{i}", T0) for i in range(2)])])
    segments = [
        (parse_segment_key(key), msgspec.msgpack.decode(value or b""))
        for _, key, value in log.records
        if key[:1] == Kind.IDS
    ]
    assert [(seq, len(ids)) for (_, _, seq), ids in segments] == [(0, 3), (1, 3), (2, 1), (3, 2)]
    assert all(day == D27 and tag == A for (day, tag, _), _ in segments)
    # A segment holds ids without their day prefix (the key carries the day).
    assert segments[0][1][0] == b"acme\0x0"
    worker.close()


def test_a_new_writer_retires_the_old_writers_keys_as_it_rewrites_them(tmp_path: Path) -> None:
    log = StateLog()
    first = Worker(tmp_path / "p0", log, LIMITS, terms_for=lookup(ACME), tag=A)
    first.run(stream(2))
    first.close()
    # The partition moves to a worker without a local store: a full restore, a new tag.
    second = Worker(tmp_path / "p1", log, LIMITS, terms_for=lookup(ACME), tag=B)
    assert second.retire == {A}
    mark = log.next_offset
    second.run(stream(1, start=2))
    new = [(key, value) for _, key, value in log.records[mark:]]
    retired = {key for key, value in new if value is None}
    rewritten = {
        key[1 + TAG_BYTES :] for key, value in new if value is not None and key[:1] == Kind.DAY
    }
    old_keys = {key for _, key, _ in log.records[:mark]}
    retired_days = {key for key in retired if key[:1] == Kind.DAY}
    assert retired_days  # the run rewrote days the old writer had written
    assert retired_days == {
        Kind.DAY + A + name for name in rewritten if Kind.DAY + A + name in old_keys
    }
    assert Kind.FENCE + A in retired
    assert (
        Kind.TOTAL + A + period_key(PeriodKey("acme", at(2026, 11, 1), at(2026, 12, 1))) in retired
    )
    assert second.retire == set()  # retired once
    second.close()


def test_expiry_writes_a_tombstone_per_day_key_and_per_id_segment_never_per_id(
    tmp_path: Path,
) -> None:
    log = StateLog()
    worker = Worker(tmp_path / "p0", log, LIMITS, tag=A)
    for offset in range(0, 16, 2):  # two days, two records per run
        worker.run(stream(2, start=offset))
    assert worker.state.first_day > D27 - 1
    expired_before = worker.state.first_day
    written = [(key, value) for _, key, value in log.records]
    tombstones = [
        key for key, value in written if value is None and key[:1] in (Kind.DAY, Kind.IDS)
    ]
    assert tombstones
    # Every tombstone names a day key or a segment of an expired day, and each once.
    assert len(tombstones) == len(set(tombstones))
    for key in tombstones:
        day = day_of_key(key[1 + TAG_BYTES :]) if key[:1] == Kind.DAY else parse_segment_key(key)[0]
        assert day < expired_before
    ids_written = sum(
        len(msgspec.msgpack.decode(value))
        for key, value in written
        if key[:1] == Kind.IDS and value
    )
    assert len(tombstones) < ids_written  # per segment, not per id
    # What compaction leaves holds no key of an expired day.
    for key in log.live_keys():
        if key[:1] == Kind.DAY:
            assert day_of_key(key[1 + TAG_BYTES :]) >= expired_before
        elif key[:1] == Kind.IDS:
            assert parse_segment_key(key)[0] >= expired_before
    # And the local store neither.
    for family in ("ids", "days"):
        assert all(day_of_key(key) >= expired_before for key in dump(worker.store)[family])
    worker.close()


def test_a_day_changed_and_expired_by_the_same_run_leaves_no_key_in_the_compacted_log(
    tmp_path: Path,
) -> None:
    # Record 0 counts an event of 2026-11-26; record 1, in the same run, moves the floor
    # past that day's end. The day's value goes to the bucket topic (the shell publishes
    # expiring days first), but no key of it may outlive compaction in the state log.
    log = StateLog()
    worker = Worker(tmp_path / "p0", log, Limits(late_horizon_ms=HOUR), tag=A)
    worker.run([rec(0, T0 - 30 * MINUTE, ev("a", T0 - 31 * MINUTE))])
    outcome = worker.run(
        [
            rec(1, T0, [ev("b", T0 - 40 * MINUTE), ev("n", T0 - 40 * MINUTE, app="new")]),
            rec(2, T0 + 2 * HOUR, ev("c", T0 + HOUR)),
        ]
    )
    assert outcome.expired_before_day == D27
    assert {DayKey("acme", "bot", D27 - 1), DayKey("acme", "new", D27 - 1)} <= set(outcome.days)
    live = log.live_keys()
    assert [
        key
        for key in live
        if key[:1] in (Kind.DAY, Kind.IDS)
        and (day_of_key(key[1 + TAG_BYTES :]) if key[:1] == Kind.DAY else parse_segment_key(key)[0])
        < D27
    ] == []
    assert all(
        not key.startswith(b"n") or day_of_key(key[1:]) >= D27 for key in dump(worker.store)["meta"]
    )
    worker.close()


def test_expired_totals_and_fired_are_tombstoned(tmp_path: Path) -> None:
    log = StateLog()
    worker = Worker(tmp_path / "p0", log, LIMITS, terms_for=lookup(ACME), tag=A)
    worker.run(stream(30))  # crosses thresholds in November
    nov = PeriodKey("acme", at(2026, 11, 1), at(2026, 12, 1))
    assert nov in worker.state.ledger.totals and worker.state.ledger.fired
    worker.run(stream(14, start=30))  # floor past 2026-12-01: November is over
    assert nov not in worker.state.ledger.totals
    live = log.live_keys()
    assert Kind.TOTAL + A + period_key(nov) not in live
    assert not [
        key for key in live if key[:1] == Kind.FIRED and b"\x00" + str(nov.start_ms).encode() in key
    ]
    assert not [key for key in dump(worker.store)["ledger"] if str(nov.start_ms).encode() in key]
    worker.close()


# ------------------------------------------------------------------ atomic with its fence

_WRITER = """
import sys
from pathlib import Path
from core.partition import Limits
from tests.streams.state.support import StateLog, Worker, stream
worker = Worker(Path(sys.argv[1]), StateLog(), Limits(), tag=b"AAAA")
for offset in range(10_000):
    worker.run(stream(1, start=offset, every_ms=60_000))
    print(offset, flush=True)
"""


@pytest.mark.parametrize("after", [3, 20, 57])
def test_a_commit_is_atomic_with_its_fence_under_kill_9(tmp_path: Path, after: int) -> None:
    """A writer killed at a random moment leaves a store whose fence and state agree."""
    path = tmp_path / "p0"
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert child.stdout is not None
    for line in child.stdout:
        if int(line) >= after:
            break
    child.kill()
    child.wait()
    store = PartitionStore.open(path, budget())
    fence = store.fence()
    assert fence.applied >= after
    content = dump(store)
    # Every run adds two new ids (e<offset>, g<offset>): exactly those of 0..applied.
    assert len(content["ids"]) == 2 * (fence.applied + 1) + 1  # and e-1, new at offset 0
    assert (
        max(decode_day(value[TAG_BYTES:]).version for value in content["days"].values())
        == fence.applied
    )
    assert all(key[:DAY_PREFIX] for key in content["ids"])
    store.close()


def test_new_tags_are_fresh() -> None:
    tags = {new_tag() for _ in range(100)}
    assert len(tags) == 100
    assert all(len(tag) == TAG_BYTES for tag in tags)
