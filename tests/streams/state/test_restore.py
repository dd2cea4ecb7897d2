"""Restorer: a store rebuilt from the state log equals the one that wrote it.

Modelled on quix-streams' recovery tests (tests/test_quixstreams/test_state/test_recovery):
changelog records are fed to a real store, here RocksDB in tmp_path, and the result is
compared column family by column family with the store that produced them; from the full
log, from what compaction leaves of it, and from a restore interrupted anywhere and resumed.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import msgspec
import pytest

from core.billing import Monthly, Terms
from core.days import DAY_MS
from core.ledger import PeriodKey
from core.money import MICRO
from core.partition import Limits, SourceRecord
from core.statecodec import TAG_BYTES, Kind, counter_key, day_of_key, parse_counter_key
from streams.state import restore as restore_module
from streams.state.changelog import StateRecord, load_ledger
from streams.state.restore import Restorer
from streams.state.store import Fence, PartitionStore
from tests.core.support import DAY, MINUTE, T0, at, ev, rec, terms
from tests.streams.state.support import (
    StateLog,
    Worker,
    budget,
    dump,
    lookup,
    queued,
    restore,
    stream,
)

LIMITS = Limits(late_horizon_ms=DAY)
ACME = terms(allotment="40", period=Monthly(date(2026, 1, 1)))
NOV = PeriodKey("acme", at(2026, 11, 1), at(2026, 12, 1))
A, B = b"AAAA", b"BBBB"
RUNS = [(0, 3), (3, 4), (4, 11), (11, 20), (20, 33), (33, 41), (41, 48)]
"""Seven commits over six days: November's total expires at offset 40 (floor past Dec 1)."""


def written(tmp_path: Path, runs: list[tuple[int, int]] = RUNS) -> tuple[Worker, StateLog]:
    """A worker that applied ``runs`` of :func:`stream`, each committed whole."""
    log = StateLog()
    worker = Worker(tmp_path / "live", log, LIMITS, terms_for=lookup(ACME), tag=A)
    records = stream(runs[-1][1])
    for lo, hi in runs:
        worker.run(records[lo:hi])
    return worker, log


def test_the_scenario_has_what_a_restore_must_carry(tmp_path: Path) -> None:
    worker, log = written(tmp_path)
    content = dump(worker.store)
    assert content["ids"] and content["days"] and content["ledger"]
    assert worker.state.first_day >= T0 // DAY_MS + 4  # days expired, November's total too
    assert NOV not in worker.state.ledger.totals and worker.state.ledger.totals
    assert any(value is None for _, _, value in log.records)
    assert sum(1 for o in worker.outcomes if o.alerts) >= 2
    worker.close()


@pytest.mark.parametrize("compacted", [False, True], ids=["full log", "compacted log"])
def test_a_restore_rebuilds_the_same_store(tmp_path: Path, compacted: bool) -> None:
    worker, log = written(tmp_path)
    source = log.compacted() if compacted else log
    restored = restore(tmp_path / "restored", source)
    assert dump(restored) == dump(worker.store)
    assert restored.fence() == worker.store.fence()
    restored.close()
    worker.close()


def test_compaction_keeps_the_log_to_the_live_state(tmp_path: Path) -> None:
    worker, log = written(tmp_path)
    live = log.live_keys()
    first_day = worker.state.first_day
    for key in live:
        if key[:1] == Kind.DAY:
            assert day_of_key(key[1 + TAG_BYTES :]) >= first_day
    assert len(live) < len(log.records) / 2
    worker.close()


@pytest.mark.parametrize("compacted", [False, True], ids=["full log", "compacted log"])
def test_a_restore_interrupted_anywhere_resumes_from_its_marker(
    tmp_path: Path, compacted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(restore_module, "_BATCH_OPS", 7)  # write (and mark) often
    worker, log = written(tmp_path)
    expected = dump(worker.store)
    records = (log.compacted() if compacted else log).records
    for cut in range(0, len(records) + 1, 5):
        path = tmp_path / f"cut{cut}"
        store = PartitionStore.open(path, budget())
        Restorer(store).feed(records[:cut])
        store.close()  # the process dies: what was not written is lost
        store = PartitionStore.open(path, budget())
        restorer = Restorer(store)
        assert restorer.log_offset <= (records[cut - 1][0] if cut else -1)
        restorer.feed([r for r in records if r[0] > restorer.log_offset])
        restorer.finish()
        # Days restored before the crash, too: the rest of the log may hold none.
        assert restorer.days_to_queue, f"cut after {cut} records"
        queued(restorer)
        assert dump(store) == expected, f"cut after {cut} records"
        store.close()
    worker.close()


def test_a_store_behind_its_log_catches_up_from_its_checkpoint(tmp_path: Path) -> None:
    # A crash between steps 3 and 4: the run is in the state log, not in the local store.
    reference, _ = written(tmp_path / "ref")
    log = StateLog()
    records = stream(RUNS[-1][1])
    worker = Worker(tmp_path / "p0", log, LIMITS, terms_for=lookup(ACME), tag=A)
    for lo, hi in RUNS[:-1]:
        worker.run(records[lo:hi])
    checkpoint = worker.store.fence().state_log_offset
    lo, hi = RUNS[-1]
    commit = worker.crash(records[lo:hi], published=10**9)
    assert commit is not None
    again = Worker(tmp_path / "p0", log, LIMITS, terms_for=lookup(ACME), tag=A)
    assert again.restorer.progress.records == log.next_offset - checkpoint - 1
    assert dump(again.store) == dump(reference.store)
    assert again.state.applied == hi - 1
    assert again.run(records[lo:hi]).replayed == hi - lo  # fenced
    again.close()
    reference.close()


def test_a_restarted_worker_reloads_its_ledger_and_fires_nothing_again(tmp_path: Path) -> None:
    log = StateLog()
    records = stream(30)
    first = Worker(tmp_path / "p0", log, LIMITS, terms_for=lookup(ACME), tag=A)
    fired = [a.alert_id for r in (records[:12], records[12:20]) for a in first.run(r).alerts]
    assert fired == ["acme:2026-11-01:50"]
    totals, alerts = dict(first.state.ledger.totals), dict(first.state.ledger.fired)
    first.close()
    again = Worker(tmp_path / "p0", log, LIMITS, terms_for=lookup(ACME), tag=B)
    assert again.restorer.progress.records == 0  # nothing to catch up: a local restart
    assert dict(load_ledger(again.store)[0]) == totals
    assert again.state.ledger.totals == totals and again.state.ledger.fired == alerts
    later = [a.alert_id for a in again.run(records[20:]).alerts]
    assert later == ["acme:2026-11-01:80", "acme:2026-11-01:100"]
    again.close()


def test_the_fence_is_the_highest_any_writer_reached(tmp_path: Path) -> None:
    store = PartitionStore.open(tmp_path / "p0", budget())
    restorer = Restorer(store)
    restorer.feed(
        [
            (0, Kind.FENCE + A, msgspec.msgpack.encode((2, 9, 500, 3))),
            (1, Kind.FENCE + B, msgspec.msgpack.encode((2, 7, 900, 2))),
            (2, Kind.FENCE + b"CCCC", msgspec.msgpack.encode((2, 4, 100, 1))),
            (3, Kind.FENCE + b"CCCC", None),  # retired: its fence no longer counts
        ]
    )
    assert restorer.finish() == Fence(9, 900, 3, 3)
    assert store.fence() == Fence(9, 900, 3, 3)
    assert restorer.other_writers() == {A, B}
    store.close()


def test_a_state_log_of_another_format_is_refused(tmp_path: Path) -> None:
    store = PartitionStore.open(tmp_path / "p0", budget())
    restorer = Restorer(store)
    with pytest.raises(ValueError, match="format 1"):
        restorer.feed([(0, Kind.FENCE + A, msgspec.msgpack.encode((1, 9, 500, 3)))])
    store.close()


def test_the_newer_version_wins_whatever_the_order(tmp_path: Path) -> None:
    worker, log = written(tmp_path, RUNS[:3])
    records = list(reversed(log.compacted().records))  # newest first: same result
    restored = restore(tmp_path / "r", [(offset, k, v) for offset, (_, k, v) in enumerate(records)])
    assert dump(restored)["days"] == dump(worker.store)["days"]
    assert dump(restored)["ids"] == dump(worker.store)["ids"]
    restored.close()
    worker.close()


# ------------------------------------------------------------------ zombies


@pytest.mark.parametrize("compacted", [False, True], ids=["full log", "compacted log"])
def test_a_zombies_late_records_lose_to_the_new_owners(tmp_path: Path, compacted: bool) -> None:
    # A owns the partition up to offset 19, then loses it without knowing. B restores, gets
    # a new tag and applies 20..40; A, a zombie, applies 20..29 from its own store and its
    # records reach the log after B's. Compaction keeps both tags' keys; a restore must
    # land on B's days, totals and fence.
    records = stream(41)
    log = StateLog()
    old = Worker(tmp_path / "a", log, LIMITS, terms_for=lookup(ACME), tag=A)
    old.run(records[:12])
    old.run(records[12:20])
    new = Worker(tmp_path / "b", log, LIMITS, terms_for=lookup(ACME), tag=B)
    assert new.state.applied == 19
    new.run(records[20:31])
    new.run(records[31:])
    old.run(records[20:25])  # the zombie's commits, published after B's
    old.run(records[25:30])
    assert old.state.applied == 29
    source = log.compacted() if compacted else log
    restored = restore(tmp_path / "c", source)
    mine, theirs = dump(restored), dump(new.store)
    assert mine["days"] == theirs["days"]
    assert mine["ids"] == theirs["ids"]
    assert mine["ledger"] == theirs["ledger"]
    assert restored.fence()._replace(state_log_offset=0) == new.store.fence()._replace(
        state_log_offset=0
    )
    assert Restorer(restored).other_writers() == set()  # a finished restore: its own fence
    restored.close()
    new.close()
    old.close()


def test_a_new_owner_retires_the_zombies_fence_once_it_has_seen_it(tmp_path: Path) -> None:
    records = stream(12)
    log = StateLog()
    old = Worker(tmp_path / "a", log, LIMITS, tag=A)
    old.run(records[:6])
    new = Worker(tmp_path / "b", log, LIMITS, tag=B)
    new.run(records[6:])
    assert Kind.FENCE + A not in log.live_keys()
    assert Kind.FENCE + B in log.live_keys()
    old.close()
    new.close()


# ------------------------------------------------------------------ expiry


@pytest.mark.parametrize("compacted", [False, True], ids=["full log", "compacted log"])
def test_a_restored_store_holds_no_expired_day(tmp_path: Path, compacted: bool) -> None:
    worker, log = written(tmp_path)
    first_day = worker.state.first_day
    restored = restore(tmp_path / "r", log.compacted() if compacted else log)
    content = dump(restored)
    assert content["ids"] and content["days"]
    for family in ("ids", "days", "outbox"):
        assert all(day_of_key(key) >= first_day for key in content[family]), family
    counters = [parse_counter_key(key)[0] for key in content["meta"] if key[:1] == b"n"]
    assert counters and min(counters) >= first_day
    assert not [
        k for k in content["meta"] if counter_key(0, b"") <= k < counter_key(first_day, b"")
    ]
    restored.close()
    worker.close()


def test_progress_lines_say_ids_rate_share_and_eta(tmp_path: Path) -> None:
    worker, log = written(tmp_path, RUNS[:3])
    store = PartitionStore.open(tmp_path / "r", budget())
    restorer = Restorer(store)
    restorer.feed(log.records)
    line = restorer.progress.line(0, 1, 2)
    assert line.startswith(f"partition 0: restored {restorer.progress.ids:,} ids from ")
    assert "ids/s), 50% of the log, ETA " in line
    assert restorer.progress.ids == sum(
        len(msgspec.msgpack.decode(value))
        for _, key, value in log.records
        if key[:1] == Kind.IDS and value
    )
    restorer.finish()
    store.close()
    worker.close()


# ------------------------------------------------------------------ a crash in the middle of a commit


@pytest.mark.parametrize("then", ["reopen", "restore"])
def test_a_crash_after_any_prefix_of_a_commit_counts_and_fires_exactly_once(
    tmp_path: Path, then: str
) -> None:
    # 2 credits an event, 10 allotted: 50% at e2 (6), 80% at e3 (8), 100% at e4 (10). The
    # first run (0..3) opens the period total and crosses 50% and 80%; it dies with only
    # the first ``published`` of its state-log records in Kafka and no local batch.
    spec = terms(allotment="10", period=Monthly(date(2026, 1, 1)))
    records = [rec(i, T0 + i * MINUTE, ev(f"e{i}", T0 + i * MINUTE, credits="2")) for i in range(8)]
    expected = {
        "acme:2026-11-01:50": ("e2", 6 * MICRO),
        "acme:2026-11-01:80": ("e3", 8 * MICRO),
        "acme:2026-11-01:100": ("e4", 10 * MICRO),
    }
    reference = Worker(tmp_path / "ref", StateLog(), Limits(), terms_for=lookup(spec))
    reference.run(records)
    for published in range(len(_crashed_commit(tmp_path / "probe", records[:4], spec)) + 1):
        log = StateLog()
        first = Worker(tmp_path / f"a{published}", log, Limits(), terms_for=lookup(spec))
        crashed, commit = first.prepare(records[:4])
        assert commit is not None
        emitted = list(crashed.alerts)  # published before the state log (step 2)
        log.append(commit.records[:published])
        first.close()
        path = tmp_path / (f"a{published}" if then == "reopen" else f"b{published}")
        second = Worker(path, log, Limits(), terms_for=lookup(spec))
        for run in (records[:4], records[4:]):
            emitted += second.run(run).alerts
        assert {a.alert_id for a in emitted} == set(expected), published
        for alert in emitted:
            assert (alert.event_id, alert.used_micro) == expected[alert.alert_id], published
        assert second.state.ledger.totals == reference.state.ledger.totals, published
        assert dump(second.store)["days"].values() and {
            k: v[TAG_BYTES:] for k, v in dump(second.store)["days"].items()
        } == {k: v[TAG_BYTES:] for k, v in dump(reference.store)["days"].items()}, published
        second.close()
    reference.close()


def _crashed_commit(path: Path, records: list[SourceRecord], spec: Terms) -> list[StateRecord]:
    """The state-log records of a first run of ``records``."""
    worker = Worker(path, StateLog(), Limits(), terms_for=lookup(spec))
    _, commit = worker.prepare(records)
    worker.close()
    assert commit is not None
    return commit.records
