"""Period totals and allotment alerts, driven through PartitionState.apply with contract terms.

A restart is :meth:`tests.core.support.Shell.restart`: a new state over what the shell
persisted (store, fence, ledger), as a worker reopening its local store gets.
"""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.contracts import Contract, to_terms
from core.alerts import Alert, AlertKey
from core.billing import Explicit, Monthly, Terms
from core.buckets import BUCKET_MS
from core.days import DAY_MS, Bucket, DayKey, DayUsage
from core.events import Reason
from core.ledger import PeriodKey, PeriodLedger, PeriodTotal, TermsLookup
from core.money import MICRO, format_micro
from core.partition import BatchOutcome, Limits, PartitionState, SourceRecord
from core.state import MemoryState
from core.statecodec import encode_day, id_key
from tests.core.support import FAST, HOUR, MINUTE, T0, Shell, at, ev, rec, terms

M = MINUTE
LIMITS = Limits()

# acme: 100 credits a month from 2026-01-01 (UTC); November 2026 is [11-01, 12-01).
ACME = terms(allotment="100", period=Monthly(date(2026, 1, 1)))
NOV_START, NOV_END = at(2026, 11, 1), at(2026, 12, 1)
DEC_START, DEC_END = at(2026, 12, 1), at(2027, 1, 1)


def lookup(*known: Terms) -> TermsLookup:
    """A ``terms_for`` over the given terms; other accounts have no contract."""
    by_account = {t.account_id: t for t in known}
    return by_account.get


NOV = PeriodKey("acme", NOV_START, NOV_END)
DEC = PeriodKey("acme", DEC_START, DEC_END)


def fresh() -> Shell:
    return Shell(LIMITS)


def ids(alerts: list[Alert]) -> list[str]:
    return [alert.alert_id for alert in alerts]


def used(shell: Shell) -> dict[PeriodKey, int]:
    """Micro-credits of every open period total."""
    return {key: total.micro for key, total in shell.state.ledger.totals.items()}


def stream(count: int, credits: str = "12", start: int = 0) -> list[SourceRecord]:
    """Records ``start..start+count-1``, one acme event each, a minute apart from T0."""
    return [
        rec(i, T0 + i * M + 500, ev(f"e{i}", T0 + i * M, credits=credits))
        for i in range(start, start + count)
    ]


def apply_all(
    shell: Shell, batches: list[list[SourceRecord]], terms_for: TermsLookup
) -> list[Alert]:
    """Apply batches (each persisted, as the worker does); return the alerts they fired."""
    alerts: list[Alert] = []
    for batch in batches:
        alerts += shell.apply(batch, terms_for).alerts
    return alerts


# ------------------------------------------------------------------ crossing thresholds


def test_a_stream_crossing_50_80_100_fires_exactly_three_alerts() -> None:
    # 12 credits per event: 60 at e4 (50%), 84 at e6 (80%), 108 at e8 (100%), then 120.
    shell = fresh()
    out = shell.apply(stream(10), lookup(ACME))
    assert ids(out.alerts) == ["acme:2026-11-01:50", "acme:2026-11-01:80", "acme:2026-11-01:100"]
    assert [(a.event_id, a.used_micro) for a in out.alerts] == [
        ("e4", 60 * MICRO),
        ("e6", 84 * MICRO),
        ("e8", 108 * MICRO),
    ]
    assert [a.crossed_at_ms for a in out.alerts] == [
        T0 + 4 * M + 500,
        T0 + 6 * M + 500,
        T0 + 8 * M + 500,
    ]
    assert all(a.allotment_micro == 100 * MICRO and a.contract_version == 1 for a in out.alerts)
    assert all((a.period.start_ms, a.period.end_ms) == (NOV_START, NOV_END) for a in out.alerts)
    # The total: its micro-credits, its version (last offset counted), complete since the
    # period start, and the event that opened it.
    total = PeriodTotal(120 * MICRO, 9, NOV_START, "e0")
    assert shell.state.ledger.totals == {NOV: total}
    # The outcome carries what the state log needs.
    assert out.totals == {NOV: total}
    assert out.fired == {
        AlertKey("acme", NOV_START, 50): NOV_END,
        AlertKey("acme", NOV_START, 80): NOV_END,
        AlertKey("acme", NOV_START, 100): NOV_END,
    }


@pytest.mark.parametrize("cuts", [[], [1, 2, 3, 4, 5, 6, 7, 8, 9], [5], [3, 7]])
def test_batching_does_not_change_the_alerts(cuts: list[int]) -> None:
    records = stream(10)
    batches = [records[lo:hi] for lo, hi in zip([0, *cuts], [*cuts, 10], strict=True)]
    alerts = apply_all(fresh(), batches, lookup(ACME))
    assert [(a.alert_id, a.event_id) for a in alerts] == [
        ("acme:2026-11-01:50", "e4"),
        ("acme:2026-11-01:80", "e6"),
        ("acme:2026-11-01:100", "e8"),
    ]


def test_one_batch_record_crossing_several_thresholds() -> None:
    record = rec(
        0, T0, [ev("a", T0 - M, credits="49.999999"), ev("b", T0 - M, credits="50.000001")]
    )
    out = fresh().apply([record], lookup(ACME))
    assert [(a.threshold, a.event_id) for a in out.alerts] == [(50, "b"), (80, "b"), (100, "b")]


def test_usage_of_all_apps_counts_toward_the_account() -> None:
    records = [
        rec(0, T0, ev("a", T0, app="chat", credits="30")),
        rec(1, T0 + M, ev("b", T0, app="search", credits="20")),
    ]
    out = fresh().apply(records, lookup(ACME))
    assert [(a.threshold, a.used_micro) for a in out.alerts] == [(50, 50 * MICRO)]


def test_replayed_records_fire_nothing() -> None:
    shell = fresh()
    records = stream(10)
    assert len(shell.apply(records, lookup(ACME)).alerts) == 3
    again = shell.apply(records, lookup(ACME))
    assert again.replayed == 10
    assert again.alerts == []
    assert again.fired == {}
    assert again.totals == {}
    assert used(shell) == {NOV: 120 * MICRO}


def test_producer_retries_fire_nothing_and_count_once() -> None:
    shell = fresh()
    shell.apply(stream(5), lookup(ACME))  # 60: 50% fired
    retry = [rec(5 + i, T0 + 10 * M, ev(f"e{i}", T0 + i * M, credits="12")) for i in range(5)]
    out = shell.apply(retry, lookup(ACME))
    assert out.duplicates == 5
    assert out.alerts == []
    assert used(shell) == {NOV: 60 * MICRO}


# ------------------------------------------------------------------ restarts


def test_a_restarted_state_never_refires() -> None:
    records = stream(12)
    uninterrupted = apply_all(fresh(), [records[:3], records[3:7], records[7:]], lookup(ACME))
    assert len(uninterrupted) == 3

    # A worker applies 0..5 (crossing 50% at e4), persists its state, then dies.
    live = fresh()
    before = apply_all(live, [records[:3], records[3:6]], lookup(ACME))
    assert ids(before) == ["acme:2026-11-01:50"]

    restarted = live.restart()
    assert restarted.state.applied == 5
    assert used(restarted) == {NOV: 72 * MICRO}
    assert restarted.state.ledger.fired == {AlertKey("acme", NOV_START, 50): NOV_END}

    # The successor re-reads from the last committed offset (3): 3..5 are replayed.
    after = apply_all(restarted, [records[3:9], records[9:]], lookup(ACME))
    assert ids(after) == ["acme:2026-11-01:80", "acme:2026-11-01:100"]
    assert ids(before + after) == ids(uninterrupted)
    assert [a.to_wire() for a in before + after] == [a.to_wire() for a in uninterrupted]


def test_a_restored_fired_set_blocks_a_new_event_that_is_still_above_the_threshold() -> None:
    # Without the persisted fired set, the next event (62 >= 50) would fire 50% again.
    live = fresh()
    live.apply([rec(0, T0, ev("a", T0, credits="60"))], lookup(ACME))
    restarted = live.restart()
    out = restarted.apply([rec(1, T0 + M, ev("b", T0, credits="2"))], lookup(ACME))
    assert out.alerts == []
    assert used(restarted) == {NOV: 62 * MICRO}


def test_restored_totals_equal_the_live_ones() -> None:
    records = [
        rec(0, T0, ev("a", T0, credits="40")),
        rec(1, T0 + M, ev("b", T0, account="globex", credits="7")),
        rec(2, T0 + 2 * M, ev("c", T0, credits="20.5")),
    ]
    globex = terms(account="globex", allotment="10", period=Monthly(date(2026, 3, 15)))
    live = fresh()
    alerts = apply_all(live, [records[:2], records[2:]], lookup(ACME, globex))
    assert ids(alerts) == ["globex:2026-11-15:50", "acme:2026-11-01:50"]
    restored = live.restart()
    assert restored.state.ledger.totals == live.state.ledger.totals
    assert restored.state.ledger.fired == live.state.ledger.fired
    assert used(restored)[NOV] == 60_500_000


# ------------------------------------------------------------------ versions


def test_a_stored_total_whose_version_covers_an_offset_is_not_added_to_again() -> None:
    # The state log ran ahead of the input commit: the days and the total count 0..5 (the
    # ids of 3..5 did not make it), the fence says 2. Replaying 3..8 remembers 3..5 and adds
    # 6..8 only, and fires 80% and 100% where the uninterrupted stream fires them.
    records = stream(9)
    uninterrupted = apply_all(fresh(), [records], lookup(ACME))
    live = fresh()
    before = apply_all(live, [records[:6]], lookup(ACME))
    ahead = live.restart()
    ahead.state.applied = 2
    ahead.store.ids -= {id_key(T0 // DAY_MS, "acme", f"e{i}") for i in range(3, 6)}
    after = apply_all(ahead, [records[3:]], lookup(ACME))
    assert ahead.store.ids == live.store.ids | {
        id_key(T0 // DAY_MS, "acme", f"e{i}") for i in range(6, 9)
    }
    assert ids(before) == ["acme:2026-11-01:50"]
    assert [a.to_wire() for a in after] == [a.to_wire() for a in uninterrupted[1:]]
    assert used(ahead) == {NOV: 108 * MICRO}
    assert ahead.state.ledger.totals[NOV].version == 8
    assert ahead.day("acme", "bot", T0 // DAY_MS) == DayUsage(8, {0: Bucket(9, 108 * MICRO)})


def test_a_stored_total_skips_every_event_of_a_covered_batch_record() -> None:
    # Offset 5 is one batch record of three events; the total's version is 5. Replayed,
    # none of the three counts again, and the next offset does.
    batch = rec(5, T0 + 5 * M, [ev(f"b{i}", T0 + 5 * M, credits="10") for i in range(3)])
    tail = rec(6, T0 + 6 * M, ev("c", T0 + 6 * M, credits="1"))
    live = fresh()
    live.apply([*stream(5, credits="1"), batch], lookup(ACME))
    assert live.state.ledger.totals[NOV] == PeriodTotal(35 * MICRO, 5, NOV_START, "e0")
    ahead = live.restart()
    ahead.state.applied = 4
    # The state log held the days and the total of offset 5, not yet its ids.
    ahead.store.ids -= {id_key(T0 // DAY_MS, "acme", f"b{i}") for i in range(3)}
    out = ahead.apply([batch, tail], lookup(ACME))
    assert out.accepted == 4
    assert used(ahead) == {NOV: 36 * MICRO}
    assert out.alerts == []  # 36% of 100


def test_a_total_opened_from_days_a_cut_run_wrote_counts_its_events_once() -> None:
    # A run reached the state log with its days but not its ids or fence, and the account had
    # no contract then (no total). Replayed with a contract, the total opens from the stored
    # days, which hold the cut run's events already: they must not be added a second time.
    records = stream(3, credits="10")
    live = fresh()
    live.apply(records)  # no terms: days only
    cut = live.restart()
    cut.state.applied = -1  # the fence did not make it
    cut.store.ids.clear()  # nor the ids
    tail = rec(3, T0 + 3 * M, ev("new", T0 + 3 * M, credits="5"))
    cut.apply([*records, tail], lookup(ACME))
    assert used(cut) == {NOV: 35 * MICRO}
    assert cut.day("acme", "bot", T0 // DAY_MS) == DayUsage(3, {0: Bucket(4, 35 * MICRO)})


def test_a_total_changed_in_this_run_always_counts() -> None:
    # A total at version 5 that this run already moved (offset 6) counts what follows at
    # any offset: the guard is for values read from the store, not for the run's own.
    ledger = PeriodLedger()
    ledger.restore([(NOV, PeriodTotal(10 * MICRO, 5, NOV_START, "x"))], [])
    shell = fresh()
    shell.state = PartitionState(0, LIMITS, 5, T0, 0, ledger)
    out = shell.apply(
        [rec(6, T0, ev("a", T0, credits="1")), rec(7, T0, [ev("b", T0), ev("c", T0)])],
        lookup(ACME),
    )
    assert out.totals == {NOV: PeriodTotal(13 * MICRO, 7, NOV_START, "x")}


@FAST
@given(
    credits=st.lists(st.integers(min_value=0, max_value=40 * MICRO), min_size=1, max_size=20),
    allotment=st.integers(min_value=0, max_value=200 * MICRO),
    thresholds=st.lists(st.integers(1, 200), min_size=1, max_size=4, unique=True),
    data=st.data(),
)
def test_alerts_match_a_model_across_batching_and_a_restart(
    credits: list[int], allotment: int, thresholds: list[int], data: st.DataObject
) -> None:
    spec = dataclasses.replace(
        ACME, allotment_micro=allotment, thresholds=tuple(sorted(thresholds))
    )
    records = [
        rec(i, T0 + i * M, ev(f"e{i}", T0 - HOUR + i * M, credits=format_micro(micro)))
        for i, micro in enumerate(credits)
    ]
    # The model: each threshold fires at the first event whose running total reaches it.
    expected: list[tuple[str, str]] = []
    running, done = 0, set()
    for i, micro in enumerate(credits):
        running += micro
        for threshold in spec.thresholds:
            if threshold not in done and running > 0 and running * 100 >= threshold * allotment:
                done.add(threshold)
                expected.append((f"acme:2026-11-01:{threshold}", f"e{i}"))

    cuts = data.draw(st.lists(st.integers(1, max(1, len(records) - 1)), unique=True).map(sorted))
    batches = [records[lo:hi] for lo, hi in zip([0, *cuts], [*cuts, len(records)], strict=True)]
    crash_after = data.draw(st.integers(0, len(batches)), label="batches before the crash")
    live = fresh()
    before = apply_all(live, batches[:crash_after], lookup(spec))
    restored = live.restart()
    replay_from = data.draw(st.integers(0, restored.state.applied + 1), label="replay from")
    after = apply_all(restored, [records[replay_from:]], lookup(spec))
    assert [(a.alert_id, a.event_id) for a in before + after] == expected
    assert used(restored).get(NOV, 0) == sum(credits)


# ------------------------------------------------------------------ late events


def test_late_event_pushing_the_previous_period_over_a_threshold_fires_for_it() -> None:
    shell = fresh()
    out = shell.apply(
        [
            rec(0, at(2026, 11, 20), ev("nov", at(2026, 11, 20), credits="70")),
            rec(1, at(2026, 12, 2), ev("dec", at(2026, 12, 2), credits="10")),
        ],
        lookup(ACME),
    )
    assert ids(out.alerts) == ["acme:2026-11-01:50"]
    arrival = at(2026, 12, 2, 1)
    late = rec(2, arrival, ev("late", at(2026, 11, 30, 23, 45), credits="15"))
    out = shell.apply([late], lookup(ACME))
    (alert,) = out.alerts
    assert alert.alert_id == "acme:2026-11-01:80"
    assert (alert.period.start_date, alert.period.end_date) == (
        date(2026, 11, 1),
        date(2026, 12, 1),
    )
    assert alert.used_micro == 85 * MICRO
    assert alert.crossed_at_ms == arrival
    assert alert.to_wire()["period"]["start"] == "2026-11-01"
    assert used(shell) == {NOV: 85 * MICRO, DEC: 10 * MICRO}


def test_late_event_for_a_period_not_seen_before_counts_its_buckets() -> None:
    # The worker only saw December so far; the late November events are summed from the days
    # the store holds.
    shell = fresh()
    shell.apply([rec(0, at(2026, 12, 2), ev("d", at(2026, 12, 2), credits="1"))])
    late = [
        rec(1, at(2026, 12, 3), ev("n1", at(2026, 11, 10), credits="30")),  # no terms yet
        rec(2, at(2026, 12, 3), ev("n2", at(2026, 11, 29), credits="25")),
    ]
    shell.apply(late[:1])
    out = shell.apply(late[1:], lookup(ACME))
    assert [(a.alert_id, a.used_micro) for a in out.alerts] == [("acme:2026-11-01:50", 55 * MICRO)]


def test_late_event_in_a_local_period() -> None:
    # In Seoul, 2026-11-30T16:00Z is already December 1st; 14:00Z is still November.
    seoul = terms(allotment="100", period=Monthly(date(2026, 1, 1)), tz="Asia/Seoul")
    shell = fresh()
    shell.apply(
        [rec(0, at(2026, 11, 30, 16), ev("dec", at(2026, 11, 30, 16), credits="60"))],
        lookup(seoul),
    )
    out = shell.apply(
        [rec(1, at(2026, 11, 30, 17), ev("nov", at(2026, 11, 30, 14), credits="50"))],
        lookup(seoul),
    )
    assert ids(out.alerts) == ["acme:2026-11-01:50"]
    assert out.alerts[0].period.end_ms == at(2026, 11, 30, 15)


def test_a_period_total_counts_only_its_part_of_a_shared_day() -> None:
    # 2026-11-30 (UTC) holds the end of Seoul's November and the start of its December:
    # opening either total from the store counts only that period's buckets of the day.
    seoul = terms(allotment="100", period=Monthly(date(2026, 1, 1)), tz="Asia/Seoul")
    shell = fresh()
    shell.apply(
        [
            rec(0, at(2026, 11, 30, 17), ev("nov", at(2026, 11, 30, 14), credits="30")),
            rec(1, at(2026, 11, 30, 17), ev("dec", at(2026, 11, 30, 16), credits="7")),
        ]
    )  # no contract yet
    shell.apply([rec(2, at(2026, 11, 30, 18), ev("d2", at(2026, 11, 30, 17)))], lookup(seoul))
    shell.apply([rec(3, at(2026, 11, 30, 18), ev("n2", at(2026, 11, 30, 14, 30)))], lookup(seoul))
    assert used(shell) == {
        PeriodKey("acme", at(2026, 10, 31, 15), at(2026, 11, 30, 15)): 31 * MICRO,
        PeriodKey("acme", at(2026, 11, 30, 15), at(2026, 12, 31, 15)): 8 * MICRO,
    }


# ------------------------------------------------------------------ contract changes


def test_lowered_allotment_fires_newly_crossed_thresholds_only() -> None:
    shell = fresh()
    v1 = ACME
    out = shell.apply([rec(0, T0, ev("a", T0, credits="60"))], lookup(v1))
    assert ids(out.alerts) == ["acme:2026-11-01:50"]
    v2 = dataclasses.replace(v1, allotment_micro=70 * MICRO, version=2)
    # 61 of 70 is 87%: 80% is newly crossed, 50% was already fired, 100% is not reached.
    out = shell.apply([rec(1, T0 + M, ev("b", T0, credits="1"))], lookup(v2))
    assert [(a.threshold, a.contract_version, a.allotment_micro) for a in out.alerts] == [
        (80, 2, 70 * MICRO)
    ]
    out = shell.apply([rec(2, T0 + 2 * M, ev("c", T0, credits="9"))], lookup(v2))
    assert ids(out.alerts) == ["acme:2026-11-01:100"]
    # Raising it back fires nothing and un-fires nothing.
    v3 = dataclasses.replace(v1, version=3)
    out = shell.apply([rec(3, T0 + 3 * M, ev("d", T0, credits="1"))], lookup(v3))
    assert out.alerts == []
    assert len(shell.state.ledger.fired) == 3


def test_lowered_allotment_from_config_via_to_terms() -> None:
    def contract(allotment: str, version: int) -> Terms:
        return to_terms(
            "acme",
            Contract.model_validate(
                {
                    "allotment_credits": allotment,
                    "period": {"type": "monthly", "anchor": "2026-01-01"},
                    "time_zone": "Asia/Seoul",
                    "payg_rate": "0.012",
                    "version": version,
                }
            ),
        )

    shell = fresh()
    out = shell.apply([rec(0, T0, ev("a", T0, credits="850"))], lookup(contract("2000", 1)))
    assert out.alerts == []  # 42.5%
    lowered = contract("1000", 2)  # 85%: 50 and 80 at once, not 100
    out = shell.apply([rec(1, T0 + M, ev("b", T0, credits="0.000001"))], lookup(lowered))
    assert [(a.alert_id, a.contract_version) for a in out.alerts] == [
        ("acme:2026-11-01:50", 2),
        ("acme:2026-11-01:80", 2),
    ]
    assert out.alerts[0].used_micro == 850_000_001


def test_contract_added_mid_period_counts_the_period_so_far() -> None:
    shell = fresh()
    shell.apply([rec(0, T0, ev("a", T0, credits="70"))])  # no contract yet
    out = shell.apply([rec(1, T0 + M, ev("b", T0, credits="15"))], lookup(ACME))
    assert [(a.threshold, a.used_micro) for a in out.alerts] == [(50, 85 * MICRO), (80, 85 * MICRO)]


def test_changed_billing_anchor_counts_toward_the_new_period() -> None:
    shell = fresh()
    v1 = ACME  # periods from the 1st: November is [11-01, 12-01)
    shell.apply(
        [
            rec(0, T0, ev("a", at(2026, 11, 10), credits="40")),
            rec(1, T0 + M, ev("b", T0, credits="5")),
        ],
        lookup(v1),
    )
    assert used(shell) == {NOV: 45 * MICRO}
    # Version 2 bills from the 15th: T0 now falls in [11-15, 12-15), which holds 5 + 50.
    v2 = dataclasses.replace(v1, period=Monthly(date(2026, 1, 15)), version=2)
    out = shell.apply([rec(2, T0 + 2 * M, ev("c", T0, credits="50"))], lookup(v2))
    assert [(a.alert_id, a.used_micro) for a in out.alerts] == [("acme:2026-11-15:50", 55 * MICRO)]
    assert out.alerts[0].period.end_date == date(2026, 12, 15)


# ------------------------------------------------------------------ periods longer than the state


YEARLY = terms(allotment="100", period=Explicit(date(2026, 10, 1), date(2027, 10, 1)))
YEAR = PeriodKey("acme", at(2026, 10, 1), at(2027, 10, 1))


def view_history(shell: Shell, key: PeriodKey, before_ms: int) -> int:
    """What the serving view holds of an account in ``[key.start_ms, before_ms)``: every day
    value the shell has published, expired ones included."""
    return sum(
        bucket.micro
        for day, value in shell.published.items()
        if day.account_id == key.account_id
        for slot, bucket in value.slots.items()
        if key.start_ms <= day.day * DAY_MS + slot * BUCKET_MS < before_ms
    )


def test_contract_added_late_in_a_long_explicit_period_counts_all_of_it() -> None:
    # Finding 5 of issue 9: the state holds the late horizon only; a year-long period opened
    # after its start must not judge alerts on the last 35 days. The total opens unseeded
    # (no alert), the shell reads the older history from the view, and the seed fires 50%.
    shell = fresh()
    shell.apply([rec(0, at(2026, 10, 5), ev("a", at(2026, 10, 5), credits="60"))])
    shell.apply([_evicting(1, at(2026, 12, 1))])  # floor 2026-10-27: Oct 5 has expired
    assert shell.state.first_day == at(2026, 10, 27) // DAY_MS
    arrival = at(2026, 12, 1, 1)
    out = shell.apply([rec(2, arrival, ev("b", arrival, credits="1"))], lookup(YEARLY))
    assert out.alerts == []
    assert out.totals == {YEAR: PeriodTotal(1 * MICRO, 2, at(2026, 10, 27), "b")}
    assert shell.state.ledger.unseeded() == [(YEAR, at(2026, 10, 27))]

    history = view_history(shell, YEAR, at(2026, 10, 27))
    assert history == 60 * MICRO
    seeded = shell.seed(YEAR, history, YEARLY, arrival + M)
    assert [(a.alert_id, a.used_micro, a.event_id) for a in seeded.alerts] == [
        ("acme:2026-10-01:50", 61 * MICRO, "b")
    ]
    assert seeded.totals == {YEAR: PeriodTotal(61 * MICRO, 2, YEAR.start_ms)}
    assert seeded.fired == {AlertKey("acme", YEAR.start_ms, 50): YEAR.end_ms}
    assert shell.state.ledger.unseeded() == []

    # Seeded for good: a second seed adds nothing, a restart keeps it, later events count on.
    assert shell.seed(YEAR, history, YEARLY, arrival + M).alerts == []
    assert used(shell) == {YEAR: 61 * MICRO}
    again = shell.restart()
    out = again.apply([rec(3, arrival + HOUR, ev("c", arrival, credits="19"))], lookup(YEARLY))
    assert ids(out.alerts) == ["acme:2026-10-01:80"]
    assert used(again) == {YEAR: 80 * MICRO}


def test_an_unseeded_period_counts_but_fires_nothing_until_seeded() -> None:
    shell = fresh()
    shell.apply([_evicting(0, at(2026, 12, 1))])
    out = shell.apply(
        [rec(1, at(2026, 12, 1, 1), ev("a", at(2026, 12, 1, 1), credits="99"))], lookup(YEARLY)
    )
    assert out.alerts == []
    assert used(shell) == {YEAR: 99 * MICRO}
    seeded = shell.seed(YEAR, 0, YEARLY, at(2026, 12, 1, 2))  # no older history
    assert [a.threshold for a in seeded.alerts] == [50, 80]
    assert seeded.alerts[0].event_id == "a"


def test_a_seed_after_the_contract_changed_counts_but_fires_nothing() -> None:
    shell = fresh()
    shell.apply([_evicting(0, at(2026, 12, 1))])
    shell.apply(
        [rec(1, at(2026, 12, 1, 1), ev("a", at(2026, 12, 1, 1), credits="99"))], lookup(YEARLY)
    )
    changed = dataclasses.replace(YEARLY, period=Monthly(date(2026, 1, 1)), version=2)
    seeded = shell.seed(YEAR, 10 * MICRO, changed, at(2026, 12, 1, 2))
    assert seeded.alerts == []
    assert used(shell)[YEAR] == 109 * MICRO


# ------------------------------------------------------------------ accounts without terms


def test_accounts_without_terms_fire_nothing() -> None:
    records = [
        rec(0, T0, ev("a", T0, account="other", credits="1000000"), key=b"other"),
        rec(1, T0 + M, ev("b", T0, credits="100")),
    ]
    shell = fresh()
    out = shell.apply(records, lookup(ACME))
    assert {a.account_id for a in out.alerts} == {"acme"}
    assert {key.account_id for key in shell.state.ledger.totals} == {"acme"}
    assert {key.account_id for key in out.totals} == {"acme"}

    bare = fresh()
    out = bare.apply(stream(10))  # no terms_for at all
    assert out.alerts == []
    assert bare.state.ledger.totals == {}
    assert out.totals == {} and out.fired == {}


def test_events_outside_any_period_fire_nothing() -> None:
    explicit = terms(allotment="1", period=Explicit(date(2026, 12, 1), date(2027, 1, 1)))
    out = fresh().apply(stream(3, credits="5"), lookup(explicit))  # November
    assert out.alerts == []
    assert out.accepted == 3


# ------------------------------------------------------------------ expiry


def _evicting(offset: int, arrival_ms: int) -> SourceRecord:
    """A record of another account that only moves the watermark."""
    return rec(offset, arrival_ms, ev(f"x{offset}", arrival_ms, account="other"), key=b"other")


def test_expiry_drops_totals_and_fired_of_periods_ended_before_the_first_day() -> None:
    shell = fresh()
    out = shell.apply(
        [
            rec(0, at(2026, 11, 27), ev("nov", at(2026, 11, 27), credits="60")),
            rec(1, at(2026, 12, 10), ev("dec", at(2026, 12, 10), credits="60")),
        ],
        lookup(ACME),
    )
    assert ids(out.alerts) == ["acme:2026-11-01:50", "acme:2026-12-01:50"]
    nov_fired, dec_fired = AlertKey("acme", NOV_START, 50), AlertKey("acme", DEC_START, 50)

    # Floor = watermark - 35 days. One ms short of 2027-01-05: the floor is still in November.
    out = shell.apply([_evicting(2, at(2027, 1, 5) - 1)], lookup(ACME))
    assert set(shell.state.ledger.totals) == {NOV, DEC}
    assert set(shell.state.ledger.fired) == {nov_fired, dec_fired}
    assert out.expired_totals == [] and out.expired_fired == []

    # At 2027-01-05 the floor reaches 2026-12-01, November's end: November is forgotten.
    out = shell.apply([_evicting(3, at(2027, 1, 5))], lookup(ACME))
    assert shell.state.floor_ms == DEC_START
    assert used(shell) == {DEC: 60 * MICRO}
    assert shell.state.ledger.fired == {dec_fired: DEC_END}
    assert out.expired_totals == [NOV]
    assert out.expired_fired == [nov_fired]

    # November can no longer be reached: a late November event is too late, fires nothing.
    out = shell.apply(
        [rec(4, at(2027, 1, 5), ev("nov2", at(2026, 11, 30, 23), credits="100"))], lookup(ACME)
    )
    assert [r.reason for _, r in out.rejected] == [Reason.TOO_LATE]
    assert out.alerts == []
    # December still knows what it fired.
    out = shell.apply(
        [rec(5, at(2027, 1, 5), ev("dec2", at(2026, 12, 31), credits="1"))], lookup(ACME)
    )
    assert out.alerts == []
    assert used(shell) == {DEC: 61 * MICRO}

    # A restart carries only what is left.
    restored = shell.restart()
    assert used(restored) == {DEC: 61 * MICRO}
    assert restored.state.ledger.fired == {dec_fired: DEC_END}


def test_outcome_bookkeeping_is_reset_between_batches() -> None:
    shell = fresh()
    first: BatchOutcome = shell.apply(stream(5), lookup(ACME))
    assert len(first.fired) == 1
    second = shell.apply([_evicting(5, T0 + HOUR)], lookup(ACME))
    assert second.fired == {}
    assert second.totals == {}


def test_a_total_opens_from_what_the_store_holds() -> None:
    # A store written by an earlier incarnation (days only, no ledger yet) is what a period
    # total opens from: two apps, two days, one slot outside the period.
    store = MemoryState()
    store.write(
        [
            (
                DayKey("acme", "bot", NOV_START // DAY_MS + 20),
                encode_day(DayUsage(3, {4: Bucket(1, 5 * MICRO)})),
            ),
            (DayKey("acme", "x", T0 // DAY_MS), encode_day(DayUsage(4, {0: Bucket(1, 7 * MICRO)}))),
            (
                DayKey("acme", "x", NOV_START // DAY_MS - 1),
                encode_day(DayUsage(2, {95: Bucket(1, MICRO)})),
            ),
            (
                DayKey("other", "x", T0 // DAY_MS),
                encode_day(DayUsage(1, {0: Bucket(1, 50 * MICRO)})),
            ),
        ],
        [],
    )
    shell = Shell(LIMITS, store=store)
    shell.state.applied = 4
    out = shell.apply([rec(5, T0, ev("a", T0, credits="38"))], lookup(ACME))
    assert out.totals == {NOV: PeriodTotal(50 * MICRO, 5, NOV_START, "a")}
    assert ids(out.alerts) == ["acme:2026-11-01:50"]
