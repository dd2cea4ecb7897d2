"""PartitionState.apply: fence, dedup, event-time window, re-routing, eviction."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.buckets import BUCKET_MS, bucket_start, iso_utc, to_epoch_ms
from core.events import Event, Reason
from core.partition import (
    BatchOutcome,
    BucketValue,
    Limits,
    PartitionState,
    SourceRecord,
    time_rejection,
)
from tests.core.support import DAY, FAST, HOUR, MINUTE, T0, dumps, ev, local_only, rec

M = MINUTE


def fresh(limits: Limits | None = None, partition: int = 0) -> PartitionState:
    return PartitionState(partition, limits or Limits())


def test_default_limits() -> None:
    limits = Limits()
    assert limits.late_horizon_ms == 35 * DAY
    assert limits.future_tolerance_ms == 5 * M
    assert limits.max_record_bytes == 1024 * 1024


def test_new_state() -> None:
    state = fresh()
    assert state.applied == -1
    assert state.watermark_ms == 0
    assert state.buckets == {}
    assert len(state.seen) == 0


# ------------------------------------------------------------------ aggregation


def test_events_are_summed_into_fifteen_minute_buckets() -> None:
    state = fresh()
    records = [
        rec(0, T0, ev("e1", T0 - 10 * M, credits="1.5", calls=2)),
        rec(1, T0 + 1000, [ev("e2", T0 - 5 * M, credits="0.25"), ev("e3", T0 - 20 * M, app="s")]),
    ]
    out = state.apply(records, local_only)
    bot = ("acme", "bot", T0 - 15 * M)  # 23:50 and 23:55 fall in [23:45, 00:00)
    search = ("acme", "s", T0 - 30 * M)
    assert out.changed == {
        bot: BucketValue(3, 1_750_000, 1),
        search: BucketValue(1, 1_000_000, 1),
    }
    assert (out.records, out.accepted, out.duplicates, out.replayed) == (2, 3, 0, 0)
    assert (out.first_offset, out.last_offset) == (-1, 1)
    assert out.applied_anything
    assert out.rejected == []
    assert out.rerouted == {}
    assert sorted((a, e, b) for a, ids in out.new_ids.items() for e, b in ids) == [
        ("acme", "e1", T0 - 15 * M),
        ("acme", "e2", T0 - 15 * M),
        ("acme", "e3", T0 - 30 * M),
    ]
    assert state.applied == 1
    assert state.watermark_ms == T0 + 1000
    assert state.bucket_value(bot) == BucketValue(3, 1_750_000, 1)
    assert state.bucket_value(("acme", "bot", T0)) is None


def test_changed_holds_absolute_values_and_the_last_changing_offset() -> None:
    state = fresh()
    state.apply([rec(0, T0, ev("e1", T0, credits="2"))], local_only)
    out = state.apply(
        [rec(1, T0, ev("e2", T0 + M, credits="0.5")), rec(2, T0 + HOUR, ev("e3", T0 + 20 * M))],
        local_only,
    )
    assert out.changed == {
        ("acme", "bot", T0): BucketValue(2, 2_500_000, 1),  # absolute, not the +0.5 delta
        ("acme", "bot", T0 + 15 * M): BucketValue(1, 1_000_000, 2),
    }
    assert (out.first_offset, out.last_offset) == (0, 2)


def test_calls_zero_and_credits_zero_still_touch_the_bucket() -> None:
    state = fresh()
    out = state.apply([rec(0, T0, ev("e1", T0, credits="0", calls=0))], local_only)
    assert out.changed == {("acme", "bot", T0): BucketValue(0, 0, 0)}
    assert out.accepted == 1


# ------------------------------------------------------------------ fence


def test_records_at_or_below_applied_are_skipped_as_replayed() -> None:
    state = fresh()
    first = [rec(i, T0, ev(f"e{i}", T0)) for i in range(3)]
    state.apply(first, local_only)
    assert state.applied == 2
    # Offsets 1 and 2 again (a crash after persisting state, before committing), then 3.
    out = state.apply([*first[1:], rec(3, T0, ev("e3", T0))], local_only)
    assert out.replayed == 2
    assert out.records == 1
    assert out.accepted == 1
    assert out.duplicates == 0  # the fence, not dedup, stopped them
    assert state.bucket_value(("acme", "bot", T0)) == BucketValue(4, 4_000_000, 3)
    assert (out.first_offset, out.last_offset) == (2, 3)


def test_a_fully_replayed_batch_applies_nothing() -> None:
    state = fresh()
    records = [rec(0, T0, ev("e0", T0)), rec(1, T0, ev("e1", T0))]
    state.apply(records, local_only)
    before = dict(state.buckets)
    out = state.apply(records, local_only)
    assert out.replayed == 2
    assert out.records == 0
    assert not out.applied_anything
    assert out.first_offset == out.last_offset == 1
    assert out.changed == {}
    assert state.buckets == before


def test_fence_only_looks_at_offsets_even_for_new_content() -> None:
    state = fresh()
    state.apply([rec(5, T0, ev("e0", T0))], local_only)
    out = state.apply([rec(5, T0, ev("brand-new", T0)), rec(4, T0, ev("x", T0))], local_only)
    assert out.replayed == 2
    assert out.accepted == 0
    assert ("acme", "brand-new") not in state.seen


# ------------------------------------------------------------------ dedup


def test_duplicates_within_a_batch_record_and_across_batches() -> None:
    state = fresh()
    out = state.apply(
        [
            rec(0, T0, [ev("e1", T0), ev("e1", T0)]),  # twice in one batch record
            rec(1, T0, ev("e1", T0)),  # a producer retry in the same poll
            rec(2, T0, ev("e2", T0)),
        ],
        local_only,
    )
    assert (out.accepted, out.duplicates) == (2, 2)
    assert state.bucket_value(("acme", "bot", T0)) == BucketValue(2, 2_000_000, 2)

    later = state.apply([rec(3, T0 + HOUR, ev("e1", T0)), rec(4, T0, ev("e2", T0))], local_only)
    assert (later.accepted, later.duplicates) == (0, 2)
    assert later.changed == {}
    assert not any(later.new_ids.values())
    assert later.applied_anything  # the fence still moves
    assert state.bucket_value(("acme", "bot", T0)) == BucketValue(2, 2_000_000, 2)


def test_a_retry_with_different_content_is_still_a_duplicate() -> None:
    state = fresh()
    state.apply([rec(0, T0, ev("e1", T0, credits="1"))], local_only)
    out = state.apply([rec(1, T0, ev("e1", T0 - 20 * M, credits="9"))], local_only)
    assert out.duplicates == 1
    assert state.buckets == {("acme", "bot", T0): [1, 1_000_000, 0]}


def test_dedup_key_includes_the_account() -> None:
    state = fresh()
    out = state.apply(
        [rec(0, T0, ev("e1", T0)), rec(1, T0, ev("e1", T0, account="globex"), key=b"globex")],
        local_only,
    )
    assert (out.accepted, out.duplicates) == (2, 0)


def test_invalid_and_rejected_events_do_not_consume_their_id() -> None:
    state = fresh()
    bad = {**ev("e1", T0), "calls": -1}
    out = state.apply([rec(0, T0, bad), rec(1, T0, ev("e1", T0))], local_only)
    assert out.accepted == 1
    assert [r.reason for _, r in out.rejected] == [Reason.INVALID_EVENT]


# ------------------------------------------------------------------ event-time window


def test_window_is_relative_to_the_append_timestamp() -> None:
    state = fresh()
    floor = T0 - 35 * DAY
    ceiling = T0 + 5 * M
    items = [
        ev("at-floor", floor),
        ev("too-late", floor - 1),
        ev("at-ceiling", ceiling),
        ev("too-early", ceiling + 1),
    ]
    record = rec(0, T0, items)
    out = state.apply([record], local_only)
    assert out.accepted == 2
    assert sorted(e for ids in out.new_ids.values() for e, _ in ids) == ["at-ceiling", "at-floor"]
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
    state = fresh()
    then = T0 - 25 * 365 * DAY  # in 2001
    out = state.apply(
        [rec(0, then, [ev("old", then - DAY), ev("now", T0)])],
        local_only,
    )
    assert out.accepted == 1
    assert [r.reason for _, r in out.rejected] == [Reason.TOO_FAR_IN_FUTURE]


def test_watermark_is_the_highest_append_time_so_far() -> None:
    state = fresh()
    state.apply([rec(0, T0 + HOUR, ev("a", T0))], local_only)
    # Record 1 has an older timestamp; the watermark does not move back, so its window is
    # [T0 + 1h - 35d, T0 + 1h + 5m], not [T0 - 35d, T0 + 5m].
    out = state.apply(
        [
            rec(
                1,
                T0,
                [ev("future-ok", T0 + HOUR + 4 * M), ev("late", T0 + HOUR - 35 * DAY - 1)],
            )
        ],
        local_only,
    )
    assert state.watermark_ms == T0 + HOUR
    assert out.accepted == 1
    assert [r.reason for _, r in out.rejected] == [Reason.TOO_LATE]


def test_future_event_is_accepted_when_resent_after_time_caught_up() -> None:
    state = fresh()
    early = state.apply([rec(0, T0, ev("e1", T0 + 10 * M))], local_only)
    assert [r.reason for _, r in early.rejected] == [Reason.TOO_FAR_IN_FUTURE]
    later = state.apply([rec(1, T0 + 6 * M, ev("e1", T0 + 10 * M))], local_only)
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
    state = fresh(Limits(max_record_bytes=200))
    bad = rec(0, T0, b"{nope")
    big = rec(1, T0 + 1, [ev(f"e{i}", T0) for i in range(5)])
    out = state.apply([bad, big, rec(2, T0 + 2, ev("ok", T0))], local_only)
    assert [(source.offset, r.reason, r.index) for source, r in out.rejected] == [
        (0, Reason.INVALID_JSON, None),
        (1, Reason.RECORD_TOO_LARGE, None),
    ]
    assert out.rejected[0][1].raw == b"{nope"
    assert out.records == 3
    assert out.accepted == 1
    assert state.applied == 2
    assert state.watermark_ms == T0 + 2  # rejected records still advance time


def test_mixed_batch_counts_the_valid_events() -> None:
    state = fresh()
    items: list[Any] = [ev("a", T0), {**ev("b", T0), "credits": "-1"}, 7, ev("c", T0)]
    out = state.apply([rec(0, T0, items)], local_only)
    assert out.accepted == 2
    assert [(r.reason, r.index) for _, r in out.rejected] == [
        (Reason.INVALID_EVENT, 1),
        (Reason.INVALID_EVENT, 2),
    ]
    assert state.bucket_value(("acme", "bot", T0)) == BucketValue(2, 2_000_000, 0)


# ------------------------------------------------------------------ re-routing


ROUTES = {"acme": 0, "globex": 0, "other": 3, "far": 1}


def test_events_of_accounts_owned_elsewhere_are_rerouted_not_aggregated() -> None:
    state = fresh()
    items = [
        ev("e1", T0),
        ev("e1", T0, account="other"),
        ev("e2", T0 - 40 * DAY, account="other"),  # the owning partition judges its time
        ev("e3", T0, account="far"),
    ]
    record = rec(0, T0, items)  # keyed "acme" but holding other accounts' events
    out = state.apply([record], ROUTES.__getitem__)
    assert out.accepted == 1
    assert out.rejected == []
    assert set(out.rerouted) == {3, 1}
    assert [(src.offset, e.account_id, e.event_id, e.index) for src, e in out.rerouted[3]] == [
        (0, "other", "e1", 1),
        (0, "other", "e2", 2),
    ]
    assert [e.raw for _, e in out.rerouted[1]] == [dumps(items[3])]
    assert list(state.buckets) == [("acme", "bot", T0)]
    assert ("other", "e1") not in state.seen
    assert state.applied == 0


def test_unkeyed_record_is_aggregated_when_the_account_is_local() -> None:
    state = fresh()
    out = state.apply([rec(0, T0, ev("e1", T0, account="globex"), key=None)], ROUTES.__getitem__)
    assert out.accepted == 1
    assert out.rerouted == {}


def test_rerouted_event_counts_on_its_own_partition() -> None:
    source = fresh(partition=0)
    out = source.apply([rec(0, T0, ev("e1", T0, account="other"))], ROUTES.__getitem__)
    ((_, moved),) = out.rerouted[3]
    target = fresh(partition=3)
    forwarded = SourceRecord(3, 0, T0 + 5, b"other", moved.raw, rerouted_from="calls:0:0")
    out3 = target.apply([forwarded], ROUTES.__getitem__)
    assert out3.accepted == 1
    assert target.bucket_value(("other", "bot", T0)) == BucketValue(1, 1_000_000, 0)


# ------------------------------------------------------------------ eviction


def test_buckets_and_ids_below_the_floor_are_evicted() -> None:
    state = fresh(Limits(late_horizon_ms=HOUR))
    state.apply(
        [rec(0, T0, [ev("old", T0 - 59 * M), ev("edge", T0 - 45 * M), ev("new", T0)])],
        local_only,
    )
    assert set(state.buckets) == {
        ("acme", "bot", T0 - 60 * M),
        ("acme", "bot", T0 - 45 * M),
        ("acme", "bot", T0),
    }
    # Append time T0+20m: floor T0-40m, whose bucket starts at T0-45m.
    out = state.apply([rec(1, T0 + 20 * M, ev("x", T0 - 35 * M))], local_only)
    assert state.floor_ms == T0 - 40 * M
    assert set(state.buckets) == {("acme", "bot", T0 - 45 * M), ("acme", "bot", T0)}
    assert ("acme", "old") not in state.seen
    assert ("acme", "edge") in state.seen
    assert out.changed == {("acme", "bot", T0 - 45 * M): BucketValue(2, 2_000_000, 1)}

    # A resend of the evicted event is too late: forgetting its id let nothing through.
    resend = state.apply([rec(2, T0 + 20 * M, ev("old", T0 - 59 * M))], local_only)
    assert resend.accepted == 0
    assert [r.reason for _, r in resend.rejected] == [Reason.TOO_LATE]
    assert state.bucket_value(("acme", "bot", T0 - 60 * M)) is None


def test_bucket_changed_then_evicted_in_the_same_batch_is_still_reported() -> None:
    # An event just inside the horizon, then a record appended later in the same poll: the
    # second record moves the floor past the first one's bucket. This used to raise KeyError
    # while building ``changed`` (and again on every restart: a poison batch for the worker).
    state = fresh(Limits(late_horizon_ms=HOUR))
    out = state.apply(
        [rec(0, T0, ev("a", T0 - 59 * M)), rec(1, T0 + 20 * M, ev("b", T0))],
        local_only,
    )
    assert out.accepted == 2
    assert out.changed == {
        ("acme", "bot", T0 - 60 * M): BucketValue(1, 1_000_000, 0),  # final value, published
        ("acme", "bot", T0): BucketValue(1, 1_000_000, 1),
    }
    assert state.bucket_value(("acme", "bot", T0 - 60 * M)) is None  # and then evicted


def test_same_with_the_default_35_day_horizon() -> None:
    state = fresh()
    out = state.apply(
        [rec(0, T0, ev("a", T0 - 35 * DAY + M)), rec(1, T0 + 20 * M, ev("b", T0))],
        local_only,
    )
    assert out.accepted == 2
    assert len(out.changed) == 2


def test_restore_buckets_overwrites() -> None:
    state = fresh()
    state.apply([rec(0, T0, ev("a", T0))], local_only)
    state.restore_buckets(
        [
            (("acme", "bot", T0), BucketValue(7, 70, 9)),
            (("acme", "x", T0), BucketValue(1, 2, 3)),
        ]
    )
    assert state.bucket_value(("acme", "bot", T0)) == BucketValue(7, 70, 9)
    assert state.bucket_value(("acme", "x", T0)) == BucketValue(1, 2, 3)


def test_apply_is_deterministic() -> None:
    records = [
        rec(0, T0, [ev("a", T0), ev("b", T0 - 2 * DAY, app="x"), ev("a", T0)]),
        rec(1, T0 + M, b"junk"),
        rec(2, T0 + 2 * M, [ev("c", T0 + HOUR), ev("d", T0, account="other")]),
    ]
    one, two = fresh(), fresh()
    assert one.apply(records, ROUTES.__getitem__) == two.apply(records, ROUTES.__getitem__)
    assert one.buckets == two.buckets
    assert sorted(one.seen.items()) == sorted(two.seen.items())


# ------------------------------------------------------------------ against a brute-force model

SMALL = Limits(late_horizon_ms=HOUR, future_tolerance_ms=5 * M)
MODEL_ROUTES = {"acme": 0, "globex": 0, "other": 1}

pool_events = st.lists(
    st.tuples(
        st.sampled_from(sorted(MODEL_ROUTES)),
        st.sampled_from(["a", "b"]),
        st.integers(min_value=-90, max_value=200),  # occurred, minutes after T0
        st.integers(min_value=0, max_value=5_000_000),  # micro-credits
        st.integers(min_value=0, max_value=3),  # calls
        st.booleans().map(lambda b: b or None),  # None: an invalid event (calls -1)
    ),
    min_size=1,
    max_size=12,
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[SourceRecord], list[int]]:
    pool = draw(pool_events)
    docs = []
    for n, (account, app, minute, micro, calls, valid) in enumerate(pool):
        doc = ev(f"e{n}", T0 + minute * M, account=account, app=app, calls=calls)
        doc["credits"] = f"{micro // 1_000_000}.{micro % 1_000_000:06d}"
        if valid is None:
            doc["calls"] = -1
        docs.append(doc)
    count = draw(st.integers(min_value=1, max_value=25))
    records = []
    clock = 0
    for offset in range(count):
        clock += draw(st.integers(min_value=-10, max_value=25))  # append times may wobble
        picks = draw(st.lists(st.integers(0, len(docs) - 1), min_size=1, max_size=4))
        value: Any = (
            docs[picks[0]] if len(picks) == 1 and draw(st.booleans()) else [docs[i] for i in picks]
        )
        records.append(rec(offset, T0 + clock * M, value))
    cuts = draw(st.lists(st.integers(min_value=1, max_value=count), max_size=4))
    return docs, records, sorted(set(cuts))


def _model(records: list[SourceRecord]) -> tuple[dict[Any, list[int]], Counter[str], set[Any], int]:
    watermark = 0
    seen: dict[tuple[str, str], int] = {}
    totals: dict[Any, list[int]] = {}
    counts: Counter[str] = Counter()
    for record in records:
        watermark = max(watermark, record.timestamp_ms)
        floor, ceiling = watermark - SMALL.late_horizon_ms, watermark + SMALL.future_tolerance_ms
        value = json.loads(record.value)
        for doc in value if isinstance(value, list) else [value]:
            occurred = to_epoch_ms(datetime.fromisoformat(doc["occurred_at"]))
            if doc["calls"] < 0:
                counts["invalid_event"] += 1
            elif MODEL_ROUTES[doc["account_id"]] != 0:
                counts["rerouted"] += 1
            elif occurred < floor:
                counts["too_late"] += 1
            elif occurred > ceiling:
                counts["too_far_in_future"] += 1
            elif (doc["account_id"], doc["event_id"]) in seen:
                counts["duplicates"] += 1
            else:
                counts["accepted"] += 1
                start = bucket_start(occurred)
                seen[(doc["account_id"], doc["event_id"])] = start
                cell = totals.setdefault((doc["account_id"], doc["app_id"], start), [0, 0, 0])
                cell[0] += doc["calls"]
                whole, fraction = doc["credits"].split(".")
                cell[1] += int(whole) * 1_000_000 + int(fraction)
                cell[2] = record.offset
    cutoff = bucket_start(watermark - SMALL.late_horizon_ms)
    live = {key: cell for key, cell in totals.items() if key[2] >= cutoff}
    ids = {(a, e, b) for (a, e), b in seen.items() if b >= cutoff}
    return live, counts, ids, watermark


def _run(records: list[SourceRecord], cuts: list[int]) -> tuple[PartitionState, Counter[str]]:
    state = PartitionState(0, SMALL)
    counts: Counter[str] = Counter()
    for lo, hi in zip([0, *cuts], [*cuts, len(records)], strict=True):
        out: BatchOutcome = state.apply(records[lo:hi], MODEL_ROUTES.__getitem__)
        counts["accepted"] += out.accepted
        counts["duplicates"] += out.duplicates
        counts["rerouted"] += sum(len(items) for items in out.rerouted.values())
        for _, rejection in out.rejected:
            counts[rejection.reason.value] += 1
        for key, value in out.changed.items():  # what is published is the state's value
            if key in state.buckets:
                assert state.buckets[key] == list(value)
            else:  # evicted since: it sat below the floor, so it can never change again
                assert key[2] < bucket_start(state.floor_ms)
    return state, counts


@FAST
@given(scenarios())
def test_apply_matches_a_brute_force_model_in_any_batching(
    scenario: tuple[list[dict[str, Any]], list[SourceRecord], list[int]],
) -> None:
    _, records, cuts = scenario
    state, counts = _run(records, cuts)
    live, expected_counts, ids, watermark = _model(records)
    assert state.buckets == live
    assert +counts == +expected_counts
    assert set(state.seen.items()) == ids
    assert state.applied == len(records) - 1
    assert state.watermark_ms == watermark
    # The whole input again is pure replay and changes nothing.
    before = {key: list(cell) for key, cell in state.buckets.items()}
    again = state.apply(records, MODEL_ROUTES.__getitem__)
    assert again.replayed == len(records)
    assert state.buckets == before


@pytest.mark.parametrize("horizon_buckets", [1, 4])
def test_live_buckets_never_reach_below_the_floor_bucket(horizon_buckets: int) -> None:
    limits = Limits(late_horizon_ms=horizon_buckets * BUCKET_MS)
    state = fresh(limits)
    for offset in range(40):
        now = T0 + offset * 7 * M
        state.apply([rec(offset, now, ev(f"e{offset}", now - 3 * M))], local_only)
        cutoff = bucket_start(state.floor_ms)
        assert all(key[2] >= cutoff for key in state.buckets)
        assert all(bucket >= cutoff for _, _, bucket in state.seen.items())
        assert len(state.buckets) <= horizon_buckets + 2


def test_chunked_keeps_order_and_bounds_each_run() -> None:
    from core.partition import chunked

    records = [rec(i, T0, b"x" * size) for i, size in enumerate([40, 40, 30, 100, 10, 10])]
    runs = list(chunked(records, 100))
    assert [[r.offset for r in run] for run in runs] == [[0, 1], [2], [3], [4, 5]]
    assert all(sum(len(r.value) for r in run) <= 100 or len(run) == 1 for run in runs)
    assert list(chunked([], 100)) == []
