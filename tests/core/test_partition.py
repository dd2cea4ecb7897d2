"""PartitionState.apply over a store: fence, dedup, event-time window, re-routing, versions, expiry.

The state lives in a store the core reads through ``core.state.StateReader``; these tests drive
it through :class:`tests.core.support.Shell`, which writes each outcome back to a
:class:`core.state.MemoryState` as the worker writes it to RocksDB.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.buckets import BUCKET_MS, iso_utc, to_epoch_ms
from core.days import DAY_MS, Bucket, DayKey, DayUsage
from core.events import Event, Reason
from core.partition import BatchOutcome, Limits, SourceRecord, chunked, time_rejection
from core.state import MemoryState
from core.statecodec import day_key, decode_day, encode_day, id_key, parse_day_key
from tests.core.support import DAY, FAST, HOUR, MINUTE, T0, Shell, dumps, ev, event_streams, rec

M = MINUTE
D27 = T0 // DAY_MS
"""2026-11-27, the day of T0."""
D26 = D27 - 1


def fresh(limits: Limits | None = None, partition: int = 0) -> Shell:
    return Shell(limits or Limits(), partition)


def usage(version: int, **slots: tuple[int, int]) -> DayUsage:
    """A day value from ``s<slot>=(calls, micro)`` keywords."""
    return DayUsage(version, {int(name[1:]): Bucket(*value) for name, value in slots.items()})


def test_default_limits() -> None:
    limits = Limits()
    assert limits.late_horizon_ms == 35 * DAY
    assert limits.future_tolerance_ms == 5 * M
    assert limits.max_record_bytes == 1024 * 1024


def test_new_state() -> None:
    shell = fresh()
    assert shell.state.applied == -1
    assert shell.state.watermark_ms == 0
    assert shell.state.first_day == 0
    assert shell.state.ledger.totals == {}
    assert shell.store.usage == {}
    assert shell.store.ids == set()


# ------------------------------------------------------------------ aggregation


def test_events_are_summed_into_fifteen_minute_buckets_of_their_day() -> None:
    shell = fresh()
    records = [
        rec(0, T0, ev("e1", T0 - 10 * M, credits="1.5", calls=2)),
        rec(1, T0 + 1000, [ev("e2", T0 - 5 * M, credits="0.25"), ev("e3", T0 - 20 * M, app="s")]),
    ]
    out = shell.apply(records)
    # Changed on purpose (issue 10): a run reports the days it changed, a DayUsage (one
    # version, buckets by 15-minute slot) per DayKey, not one value per bucket.
    # 23:50 and 23:55 of 2026-11-26 fall in slot 95 [23:45, 24:00); 23:40 in slot 94.
    assert out.decoded_days() == {
        DayKey("acme", "bot", D26): usage(1, s95=(3, 1_750_000)),
        DayKey("acme", "s", D26): usage(1, s94=(1, 1_000_000)),
    }
    assert (out.records, out.accepted, out.duplicates, out.replayed) == (2, 3, 0, 0)
    assert (out.first_offset, out.last_offset) == (-1, 1)
    assert out.applied_anything
    assert out.rejected == []
    assert out.rerouted == {}
    assert out.new_ids == {
        D26: [id_key(D26, "acme", "e1"), id_key(D26, "acme", "e2"), id_key(D26, "acme", "e3")]
    }
    assert shell.state.applied == 1
    assert shell.state.watermark_ms == T0 + 1000
    assert shell.bucket("acme", "bot", T0 - 15 * M) == Bucket(3, 1_750_000)
    assert shell.bucket("acme", "bot", T0) is None


def test_days_hold_absolute_values_and_the_last_changing_offset() -> None:
    shell = fresh()
    shell.apply([rec(0, T0, ev("e1", T0, credits="2"))])
    out = shell.apply(
        [rec(1, T0, ev("e2", T0 + M, credits="0.5")), rec(2, T0 + HOUR, ev("e3", T0 + 20 * M))]
    )
    # Absolute values (2.5, not the +0.5 delta); one version per day, its last change.
    assert out.decoded_days() == {
        DayKey("acme", "bot", D27): usage(2, s0=(2, 2_500_000), s1=(1, 1_000_000))
    }
    assert (out.first_offset, out.last_offset) == (0, 2)


def test_calls_zero_and_credits_zero_still_touch_the_bucket() -> None:
    out = fresh().apply([rec(0, T0, ev("e1", T0, credits="0", calls=0))])
    assert out.decoded_days() == {DayKey("acme", "bot", D27): usage(0, s0=(0, 0))}
    assert out.accepted == 1


def test_apply_continues_from_the_stored_value() -> None:
    # The store is the state: what another incarnation wrote is what the next run adds to.
    store = MemoryState()
    store.write([(DayKey("acme", "bot", D27), encode_day(usage(9, s0=(7, 70))))], [])
    shell = Shell(store=store)
    shell.state.applied = 9
    out = shell.apply([rec(10, T0, ev("e", T0 + M))])
    assert out.decoded_days() == {DayKey("acme", "bot", D27): usage(10, s0=(8, 1_000_070))}
    assert shell.day("acme", "bot", D27) == usage(10, s0=(8, 1_000_070))


# ------------------------------------------------------------------ fence


def test_records_at_or_below_applied_are_skipped_as_replayed() -> None:
    shell = fresh()
    first = [rec(i, T0, ev(f"e{i}", T0)) for i in range(3)]
    shell.apply(first)
    assert shell.state.applied == 2
    # Offsets 1 and 2 again (a crash after persisting state, before committing), then 3.
    out = shell.apply([*first[1:], rec(3, T0, ev("e3", T0))])
    assert out.replayed == 2
    assert out.records == 1
    assert out.accepted == 1
    assert out.duplicates == 0  # the fence, not dedup, stopped them
    assert shell.day("acme", "bot", D27) == usage(3, s0=(4, 4_000_000))
    assert (out.first_offset, out.last_offset) == (2, 3)


def test_a_fully_replayed_batch_applies_nothing() -> None:
    shell = fresh()
    records = [rec(0, T0, ev("e0", T0)), rec(1, T0, ev("e1", T0))]
    shell.apply(records)
    before = dict(shell.store.usage)
    out = shell.apply(records)
    assert out.replayed == 2
    assert out.records == 0
    assert not out.applied_anything
    assert out.first_offset == out.last_offset == 1
    assert out.decoded_days() == {}
    assert out.new_ids == {}
    assert shell.store.usage == before


def test_fence_only_looks_at_offsets_even_for_new_content() -> None:
    shell = fresh()
    shell.apply([rec(5, T0, ev("e0", T0))])
    out = shell.apply([rec(5, T0, ev("brand-new", T0)), rec(4, T0, ev("x", T0))])
    assert out.replayed == 2
    assert out.accepted == 0
    assert not shell.seen("acme", "brand-new", T0)


# ------------------------------------------------------------------ dedup


def test_duplicates_within_a_batch_record_and_across_batches() -> None:
    shell = fresh()
    out = shell.apply(
        [
            rec(0, T0, [ev("e1", T0), ev("e1", T0)]),  # twice in one batch record
            rec(1, T0, ev("e1", T0)),  # a producer retry in the same poll
            rec(2, T0, ev("e2", T0)),
        ]
    )
    assert (out.accepted, out.duplicates) == (2, 2)
    assert shell.day("acme", "bot", D27) == usage(2, s0=(2, 2_000_000))

    later = shell.apply([rec(3, T0 + HOUR, ev("e1", T0)), rec(4, T0, ev("e2", T0))])
    assert (later.accepted, later.duplicates) == (0, 2)
    assert later.decoded_days() == {}
    assert not any(later.new_ids.values())
    assert later.applied_anything  # the fence still moves
    assert shell.day("acme", "bot", D27) == usage(2, s0=(2, 2_000_000))


def test_a_retry_with_different_content_on_the_same_day_is_still_a_duplicate() -> None:
    shell = fresh()
    shell.apply([rec(0, T0, ev("e1", T0, credits="1"))])
    out = shell.apply([rec(1, T0 + HOUR, ev("e1", T0 + 20 * M, credits="9"))])
    assert out.duplicates == 1
    assert shell.buckets() == {("acme", "bot", T0): Bucket(1, 1_000_000)}


def test_the_same_event_id_on_another_utc_day_counts_again() -> None:
    # Changed on purpose (issue 10): ids are remembered per (account, event_id, UTC day of
    # event time), so a whole day of ids expires at once. A real retry resends the event
    # itself, day included; an id reused with another day's time is another event.
    shell = fresh()
    shell.apply([rec(0, T0, ev("e1", T0, credits="1"))])
    out = shell.apply([rec(1, T0, ev("e1", T0 - 20 * M, credits="9"))])  # 2026-11-26
    assert (out.accepted, out.duplicates) == (1, 0)
    assert shell.buckets() == {
        ("acme", "bot", T0): Bucket(1, 1_000_000),
        ("acme", "bot", T0 - 30 * M): Bucket(1, 9_000_000),
    }
    assert shell.seen("acme", "e1", T0) and shell.seen("acme", "e1", T0 - 20 * M)


def test_dedup_key_includes_the_account() -> None:
    out = fresh().apply(
        [rec(0, T0, ev("e1", T0)), rec(1, T0, ev("e1", T0, account="globex"), key=b"globex")]
    )
    assert (out.accepted, out.duplicates) == (2, 0)


def test_invalid_and_rejected_events_do_not_consume_their_id() -> None:
    bad = {**ev("e1", T0), "calls": -1}
    out = fresh().apply([rec(0, T0, bad), rec(1, T0, ev("e1", T0))])
    assert out.accepted == 1
    assert [r.reason for _, r in out.rejected] == [Reason.INVALID_EVENT]


def test_dedup_sees_ids_remembered_by_earlier_runs_through_the_store() -> None:
    shell = fresh()
    shell.apply([rec(0, T0, ev("e1", T0))])
    assert shell.store.ids == {id_key(D27, "acme", "e1")}
    again = shell.restart()  # nothing but the store and the fence carries over
    out = again.apply([rec(1, T0 + M, ev("e1", T0))])
    assert out.duplicates == 1


# ------------------------------------------------------------------ versions


def test_a_stored_day_whose_version_covers_an_offset_is_not_added_to_again() -> None:
    # The state log ran ahead of the input commit: day 27 already counts offsets up to 7
    # (its version), the fence says 4. Replaying 5..8 remembers every id, adds only 8.
    store = MemoryState()
    store.write([(DayKey("acme", "bot", D27), encode_day(usage(7, s0=(3, 3_000_000))))], [])
    shell = Shell(store=store)
    shell.state.applied = 4
    shell.state.watermark_ms = T0
    out = shell.apply([rec(offset, T0, ev(f"e{offset}", T0)) for offset in range(5, 9)])
    assert out.accepted == 4
    assert out.new_ids == {D27: [id_key(D27, "acme", f"e{offset}") for offset in range(5, 9)]}
    assert out.decoded_days() == {DayKey("acme", "bot", D27): usage(8, s0=(4, 4_000_000))}
    assert shell.day("acme", "bot", D27) == usage(8, s0=(4, 4_000_000))
    # A resend of a covered event is now a duplicate: its id was remembered.
    resend = shell.apply([rec(9, T0, ev("e6", T0))])
    assert resend.duplicates == 1


def test_a_run_of_covered_events_only_changes_no_day() -> None:
    store = MemoryState()
    store.write([(DayKey("acme", "bot", D27), encode_day(usage(7, s0=(3, 3_000_000))))], [])
    shell = Shell(store=store)
    shell.state.applied = 4
    out = shell.apply([rec(6, T0, ev("a", T0)), rec(7, T0, ev("b", T0, app="x"))])
    assert out.decoded_days() == {DayKey("acme", "x", D27): usage(7, s0=(1, 1_000_000))}  # new day
    assert sorted(out.new_ids[D27]) == [id_key(D27, "acme", "a"), id_key(D27, "acme", "b")]
    assert shell.day("acme", "bot", D27) == usage(7, s0=(3, 3_000_000))


def test_a_batch_record_of_several_events_at_a_covered_offset_adds_none_of_them() -> None:
    store = MemoryState()
    store.write([(DayKey("acme", "bot", D27), encode_day(usage(7, s0=(3, 3_000_000))))], [])
    shell = Shell(store=store)
    shell.state.applied = 6
    out = shell.apply(
        [
            rec(7, T0 + HOUR, [ev("a", T0), ev("b", T0 + M), ev("c", T0 + 20 * M)]),
            rec(8, T0 + HOUR, [ev("d", T0), ev("e", T0 + M)]),  # past the version: both count
        ]
    )
    assert out.accepted == 5
    assert shell.day("acme", "bot", D27) == usage(8, s0=(5, 5_000_000))
    assert len(out.new_ids[D27]) == 5


def test_the_version_guard_is_per_day() -> None:
    # Day 27 covers offset 7, day 26 (and another app) does not: only day 27 skips it.
    store = MemoryState()
    store.write([(DayKey("acme", "bot", D27), encode_day(usage(7, s0=(1, 1_000_000))))], [])
    shell = Shell(store=store)
    shell.state.applied = 6
    out = shell.apply([rec(7, T0, [ev("a", T0), ev("b", T0 - M), ev("c", T0, app="x")])])
    assert out.decoded_days() == {
        DayKey("acme", "bot", D26): usage(7, s95=(1, 1_000_000)),
        DayKey("acme", "x", D27): usage(7, s0=(1, 1_000_000)),
    }


# ------------------------------------------------------------------ event-time window


def test_window_is_relative_to_the_append_timestamp() -> None:
    floor = T0 - 35 * DAY
    ceiling = T0 + 5 * M
    items = [
        ev("at-floor", floor),
        ev("too-late", floor - 1),
        ev("at-ceiling", ceiling),
        ev("too-early", ceiling + 1),
    ]
    record = rec(0, T0, items)
    out = fresh().apply([record])
    assert out.accepted == 2
    assert out.new_ids == {
        floor // DAY_MS: [id_key(floor // DAY_MS, "acme", "at-floor")],
        D27: [id_key(D27, "acme", "at-ceiling")],
    }
    rejections = [rejection for _, rejection in out.rejected]
    assert [(r.reason, r.index) for r in rejections] == [
        (Reason.TOO_LATE, 1),
        (Reason.TOO_FAR_IN_FUTURE, 3),
    ]
    assert all(source is record for source, _ in out.rejected)
    assert rejections[0].raw == dumps(items[1])
    assert rejections[1].raw == dumps(items[3])
    assert iso_utc(floor) in rejections[0].detail
    assert iso_utc(ceiling) in rejections[1].detail


def test_no_wall_clock_an_old_record_judges_by_its_own_time() -> None:
    then = T0 - 25 * 365 * DAY  # in 2001
    out = fresh().apply([rec(0, then, [ev("old", then - DAY), ev("now", T0)])])
    assert out.accepted == 1
    assert [r.reason for _, r in out.rejected] == [Reason.TOO_FAR_IN_FUTURE]


def test_watermark_is_the_highest_append_time_so_far() -> None:
    shell = fresh()
    shell.apply([rec(0, T0 + HOUR, ev("a", T0))])
    # Record 1 has an older timestamp; the watermark does not move back, so its window is
    # [T0 + 1h - 35d, T0 + 1h + 5m], not [T0 - 35d, T0 + 5m].
    out = shell.apply(
        [rec(1, T0, [ev("future-ok", T0 + HOUR + 4 * M), ev("late", T0 + HOUR - 35 * DAY - 1)])]
    )
    assert shell.state.watermark_ms == T0 + HOUR
    assert out.accepted == 1
    assert [r.reason for _, r in out.rejected] == [Reason.TOO_LATE]


def test_future_event_is_accepted_when_resent_after_time_caught_up() -> None:
    shell = fresh()
    early = shell.apply([rec(0, T0, ev("e1", T0 + 10 * M))])
    assert [r.reason for _, r in early.rejected] == [Reason.TOO_FAR_IN_FUTURE]
    later = shell.apply([rec(1, T0 + 6 * M, ev("e1", T0 + 10 * M))])
    assert later.accepted == 1


def test_time_rejection() -> None:
    event = Event("e", "acme", "bot", T0 - 1, 0, 1, index=4, source=b"{}")
    late = time_rejection(event, T0, T0 + HOUR, T0 + 30 * M)
    assert late.reason is Reason.TOO_LATE
    assert late.index == 4
    assert late.raw == b"{}"
    assert "2026-11-26T23:59:59.999Z" in late.detail
    assert "earliest accepted 2026-11-27T00:00:00Z" in late.detail
    assert "arrival 2026-11-27T00:30:00Z" in late.detail
    early = time_rejection(event, T0 - 2 * HOUR, T0 - HOUR, T0 - 2 * HOUR)
    assert early.reason is Reason.TOO_FAR_IN_FUTURE
    assert "latest accepted 2026-11-26T23:00:00Z" in early.detail


# ------------------------------------------------------------------ rejected records


def test_unreadable_and_oversize_records_are_rejected_whole() -> None:
    shell = fresh(Limits(max_record_bytes=200))
    bad = rec(0, T0, b"{nope")
    big = rec(1, T0 + 1, [ev(f"e{i}", T0) for i in range(5)])
    out = shell.apply([bad, big, rec(2, T0 + 2, ev("ok", T0))])
    assert [(source.offset, r.reason, r.index) for source, r in out.rejected] == [
        (0, Reason.INVALID_JSON, None),
        (1, Reason.RECORD_TOO_LARGE, None),
    ]
    assert out.rejected[0][1].raw == b"{nope"
    assert out.records == 3
    assert out.accepted == 1
    assert shell.state.applied == 2
    assert shell.state.watermark_ms == T0 + 2  # rejected records still advance time


def test_mixed_batch_counts_the_valid_events() -> None:
    shell = fresh()
    items: list[Any] = [ev("a", T0), {**ev("b", T0), "credits": "-1"}, 7, ev("c", T0)]
    out = shell.apply([rec(0, T0, items)])
    assert out.accepted == 2
    assert [(r.reason, r.index) for _, r in out.rejected] == [
        (Reason.INVALID_EVENT, 1),
        (Reason.INVALID_EVENT, 2),
    ]
    assert shell.day("acme", "bot", D27) == usage(0, s0=(2, 2_000_000))


# ------------------------------------------------------------------ re-routing


ROUTES = {"acme": 0, "globex": 0, "other": 3, "far": 1}


def test_events_of_accounts_owned_elsewhere_are_rerouted_not_aggregated() -> None:
    shell = Shell(partition_for=ROUTES.__getitem__)
    items = [
        ev("e1", T0),
        ev("e1", T0, account="other"),
        ev("e2", T0 - 40 * DAY, account="other"),  # the owning partition judges its time
        ev("e3", T0, account="far"),
    ]
    record = rec(0, T0, items)  # keyed "acme" but holding other accounts' events
    out = shell.apply([record])
    assert out.accepted == 1
    assert out.rejected == []
    assert set(out.rerouted) == {3, 1}
    assert [(src.offset, e.account_id, e.event_id, e.index) for src, e in out.rerouted[3]] == [
        (0, "other", "e1", 1),
        (0, "other", "e2", 2),
    ]
    assert [e.raw for _, e in out.rerouted[1]] == [dumps(items[3])]
    assert list(shell.buckets()) == [("acme", "bot", T0)]
    assert not shell.seen("other", "e1", T0)
    assert shell.state.applied == 0


def test_unkeyed_record_is_aggregated_when_the_account_is_local() -> None:
    shell = Shell(partition_for=ROUTES.__getitem__)
    out = shell.apply([rec(0, T0, ev("e1", T0, account="globex"), key=None)])
    assert out.accepted == 1
    assert out.rerouted == {}


def test_rerouted_event_counts_on_its_own_partition() -> None:
    source = Shell(partition_for=ROUTES.__getitem__)
    out = source.apply([rec(0, T0, ev("e1", T0, account="other"))])
    ((_, moved),) = out.rerouted[3]
    target = Shell(partition=3, partition_for=ROUTES.__getitem__)
    forwarded = SourceRecord(3, 0, T0 + 5, b"other", moved.raw, rerouted_from="calls:0:0")
    out3 = target.apply([forwarded])
    assert out3.accepted == 1
    assert target.day("other", "bot", D27) == usage(0, s0=(1, 1_000_000))


# ------------------------------------------------------------------ expiry


def test_days_before_the_floors_day_are_dropped_whole() -> None:
    # Changed on purpose (issue 10): expiry is by whole UTC days. A day is dropped once the
    # floor has passed its end, so the floor's own day is kept whole, even below the floor.
    shell = fresh(Limits(late_horizon_ms=HOUR))
    shell.apply([rec(0, T0, [ev("old", T0 - 59 * M), ev("new", T0)])])
    assert shell.days() == {D26, D27}
    # Append time T0+1h+1m: the floor is T0+1m, on day 27. Day 26 goes, day 27 stays whole.
    out = shell.apply([rec(1, T0 + HOUR + M, ev("x", T0 + 30 * M))])
    assert shell.state.floor_ms == T0 + M
    assert out.expired_before_day == shell.state.first_day == D27
    assert shell.days() == {D27}
    assert not shell.seen("acme", "old", T0 - 59 * M)
    assert shell.seen("acme", "new", T0)  # below the floor, but its day is live
    assert shell.bucket("acme", "bot", T0) == Bucket(1, 1_000_000)
    assert out.decoded_days() == {
        DayKey("acme", "bot", D27): usage(1, s0=(1, 1_000_000), s2=(1, 1_000_000))
    }

    # A resend of the dropped event is too late: forgetting its id let nothing through.
    resend = shell.apply([rec(2, T0 + HOUR + M, ev("old", T0 - 59 * M))])
    assert resend.accepted == 0
    assert [r.reason for _, r in resend.rejected] == [Reason.TOO_LATE]
    assert shell.bucket("acme", "bot", T0 - HOUR) is None
    assert resend.expired_before_day is None  # the first day did not move


def test_a_floor_moving_within_a_day_expires_nothing() -> None:
    shell = fresh(Limits(late_horizon_ms=HOUR))
    shell.apply([rec(0, T0 + 2 * HOUR, ev("a", T0 + HOUR + M))])
    out = shell.apply([rec(1, T0 + 20 * HOUR, ev("b", T0 + 20 * HOUR))])
    assert out.expired_before_day is None
    assert shell.bucket("acme", "bot", T0 + HOUR) == Bucket(1, 1_000_000)  # far below the floor


def test_day_changed_then_expired_in_the_same_batch_is_still_reported() -> None:
    # An event just inside the horizon, then a record appended later in the same poll: the
    # second record moves the floor past the first one's day. The outcome still reports the
    # day's final value (the worker publishes it before it drops the day).
    shell = fresh(Limits(late_horizon_ms=HOUR))
    out = shell.apply(
        [rec(0, T0, ev("a", T0 - 59 * M)), rec(1, T0 + HOUR + 20 * M, ev("b", T0 + HOUR))]
    )
    assert out.accepted == 2
    assert out.decoded_days() == {
        DayKey("acme", "bot", D26): usage(0, s92=(1, 1_000_000)),
        DayKey("acme", "bot", D27): usage(1, s4=(1, 1_000_000)),
    }
    assert out.expired_before_day == D27
    assert shell.days() == {D27}  # and then dropped


def test_same_with_the_default_35_day_horizon() -> None:
    shell = fresh()
    out = shell.apply([rec(0, T0, ev("a", T0 - 35 * DAY + M)), rec(1, T0 + DAY, ev("b", T0))])
    assert out.accepted == 2
    assert len(out.decoded_days()) == 2
    assert out.expired_before_day == D27 - 34
    assert shell.days() == {D27}


def test_apply_is_deterministic() -> None:
    records = [
        rec(0, T0, [ev("a", T0), ev("b", T0 - 2 * DAY, app="x"), ev("a", T0)]),
        rec(1, T0 + M, b"junk"),
        rec(2, T0 + 2 * M, [ev("c", T0 + HOUR), ev("d", T0, account="other")]),
    ]
    one = Shell(partition_for=ROUTES.__getitem__)
    two = Shell(partition_for=ROUTES.__getitem__)
    assert one.apply(records) == two.apply(records)
    assert one.store == two.store
    assert one.state.applied == two.state.applied == 2


# ------------------------------------------------------------------ against a brute-force model

SMALL = Limits(late_horizon_ms=HOUR, future_tolerance_ms=5 * M)
MODEL_ROUTES = {"acme": 0, "globex": 0, "other": 1}


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[SourceRecord], list[int]]:
    records = draw(event_streams(sorted(MODEL_ROUTES)))
    cuts = draw(st.lists(st.integers(min_value=1, max_value=len(records)), max_size=4))
    return records, sorted(set(cuts))


ModelDays = dict[DayKey, DayUsage]


def model(
    records: list[SourceRecord], limits: Limits = SMALL, routes: dict[str, int] = MODEL_ROUTES
) -> tuple[ModelDays, Counter[str], set[bytes], int]:
    """Days, counts, remembered ids and watermark, computed the slow and obvious way.

    Ids are keyed by (account, event id, UTC day of event time); days before the floor's day
    are gone at the end (expiry is by whole days).
    """
    watermark = 0
    seen: set[tuple[str, str, int]] = set()
    cells: dict[DayKey, dict[int, list[int]]] = {}
    versions: dict[DayKey, int] = {}
    counts: Counter[str] = Counter()
    for record in records:
        watermark = max(watermark, record.timestamp_ms)
        floor, ceiling = watermark - limits.late_horizon_ms, watermark + limits.future_tolerance_ms
        value = json.loads(record.value)
        for doc in value if isinstance(value, list) else [value]:
            occurred = to_epoch_ms(datetime.fromisoformat(doc["occurred_at"]))
            day = occurred // DAY_MS
            if doc["calls"] < 0:
                counts["invalid_event"] += 1
            elif routes[doc["account_id"]] != 0:
                counts["rerouted"] += 1
            elif occurred < floor:
                counts["too_late"] += 1
            elif occurred > ceiling:
                counts["too_far_in_future"] += 1
            elif (doc["account_id"], doc["event_id"], day) in seen:
                counts["duplicates"] += 1
            else:
                counts["accepted"] += 1
                seen.add((doc["account_id"], doc["event_id"], day))
                key = DayKey(doc["account_id"], doc["app_id"], day)
                slot = cells.setdefault(key, {}).setdefault(occurred % DAY_MS // BUCKET_MS, [0, 0])
                slot[0] += doc["calls"]
                whole, fraction = doc["credits"].split(".")
                slot[1] += int(whole) * 1_000_000 + int(fraction)
                versions[key] = record.offset
    first_day = (watermark - limits.late_horizon_ms) // DAY_MS
    live = {
        key: DayUsage(versions[key], {s: Bucket(*v) for s, v in slots.items()})
        for key, slots in cells.items()
        if key.day >= first_day
    }
    ids = {id_key(day, account, event) for account, event, day in seen if day >= first_day}
    return live, counts, ids, watermark


def stored_days(store: MemoryState) -> ModelDays:
    """The store's days by key."""
    return {parse_day_key(raw): decode_day(value) for raw, value in store.usage.items()}


def _run(records: list[SourceRecord], cuts: list[int]) -> tuple[Shell, Counter[str]]:
    shell = Shell(SMALL, partition_for=MODEL_ROUTES.__getitem__)
    counts: Counter[str] = Counter()
    for lo, hi in zip([0, *cuts], [*cuts, len(records)], strict=True):
        out: BatchOutcome = shell.apply(records[lo:hi])
        counts["accepted"] += out.accepted
        counts["duplicates"] += out.duplicates
        counts["rerouted"] += sum(len(items) for items in out.rerouted.values())
        for _, rejection in out.rejected:
            counts[rejection.reason.value] += 1
        for key, value in out.decoded_days().items():  # what is published is the state's value
            stored = shell.store.usage.get(day_key(key))
            if stored is not None:
                assert decode_day(stored) == value
            else:  # dropped since: its day ended below the floor, so it can never change again
                assert key.day < shell.state.first_day
    return shell, counts


@FAST
@given(scenarios())
def test_apply_matches_a_brute_force_model_in_any_batching(
    scenario: tuple[list[SourceRecord], list[int]],
) -> None:
    records, cuts = scenario
    shell, counts = _run(records, cuts)
    live, expected_counts, ids, watermark = model(records)
    assert stored_days(shell.store) == live
    assert +counts == +expected_counts
    assert shell.store.ids == ids
    assert shell.state.applied == len(records) - 1
    assert shell.state.watermark_ms == watermark
    # The whole input again is pure replay and changes nothing.
    before = dict(shell.store.usage)
    again = shell.apply(records)
    assert again.replayed == len(records)
    assert shell.store.usage == before


@pytest.mark.parametrize("horizon_ms", [HOUR, 2 * DAY])
def test_live_days_never_reach_below_the_floors_day(horizon_ms: int) -> None:
    shell = fresh(Limits(late_horizon_ms=horizon_ms))
    for offset in range(60):
        now = T0 + offset * 3 * HOUR
        shell.apply([rec(offset, now, ev(f"e{offset}", now - 3 * M))])
        first_day = shell.state.floor_ms // DAY_MS
        assert shell.state.first_day == first_day
        assert min(shell.days()) >= first_day
        assert len(shell.days()) <= -(-horizon_ms // DAY_MS) + 1


def test_chunked_keeps_order_and_bounds_each_run() -> None:
    records = [rec(i, T0, b"x" * size) for i, size in enumerate([40, 40, 30, 100, 10, 10])]
    runs = list(chunked(records, 100))
    assert [[r.offset for r in run] for run in runs] == [[0, 1], [2], [3], [4, 5]]
    assert all(sum(len(r.value) for r in run) <= 100 or len(run) == 1 for run in runs)
    assert list(chunked([], 100)) == []
