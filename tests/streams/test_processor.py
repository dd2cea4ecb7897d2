"""The processor's commit order and recovery, broker-free (module docstring of streams.processor).

The real processor over real RocksDB stores in ``tmp_path``; Kafka and Redis are the
recording fakes of :mod:`tests.streams.fakes`. The same promises against the real brokers are
in tests/integration (test_worker_faults.py, test_faults.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import NamedTuple

import pytest
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

from config.settings import Settings
from core.billing import Explicit
from core.days import DAY_MS, DayKey, DayUsage, parse_day_record
from core.partition import SourceRecord
from streams.processor import StateLogReader
from streams.state.changelog import load_ledger
from streams.state.store import PartitionStore, StoreBudget
from tests.core.support import DAY, HOUR, MINUTE, T0, ev, rec, terms
from tests.streams.fakes import GatedStateLog, Shell, committed_offset, shell
from tests.streams.state.support import lookup
from view import counters

TOPICS = Settings()
# What each topic's sends and acknowledgements stand for in the module docstring's steps.
PHASES = {
    TOPICS.dlq_topic: "outputs",
    TOPICS.alerts_topic: "outputs",
    TOPICS.calls_topic: "outputs",  # re-routed events
    TOPICS.state_topic: "state log",
    TOPICS.buckets_topic: "day records",
    "days": "view",
    "progress": "view progress",
}
# 6 of 10 credits crosses the 50% threshold: an alert.
ACME = terms(allotment="10", period=Explicit(date(2026, 11, 27), date(2026, 12, 27)))


def _routes(account: str) -> int:
    return 1 if account == "globex" else 0


def _records(start: int, count: int) -> list[SourceRecord]:
    """Per offset one record: acme's events, a globex event that belongs to partition 1
    (re-routed), and every third record unreadable (a dead letter)."""
    out = []
    for offset in range(start, start + count):
        now = T0 + HOUR + offset * MINUTE
        if offset % 3 == 2:
            out.append(rec(offset, now, b"{not json"))
            continue
        items = [
            ev(f"a{offset}", now - MINUTE, credits="6" if offset == 0 else "0.5"),
            ev(f"g{offset}", now - MINUTE, account="globex"),
        ]
        out.append(rec(offset, now, items))
    return out


def _stores_of(processor_shell: Shell) -> dict[str, dict[bytes, bytes]]:
    """Partition 0's live state as stored (outbox and bookkeeping left out)."""
    owned = processor_shell.processor._owned[0]
    return {family: dict(owned.store.scan(family)) for family in ("ids", "days", "ledger")}


def _outputs(run: Shell) -> list[tuple[str, bytes | None, bytes | None]]:
    """The per-record outputs kept by the producer (step 2 of the commit order)."""
    return [(s.topic, s.key, s.value) for s in run.producer.sent if PHASES[s.topic] == "outputs"]


async def test_outputs_then_state_log_then_local_commit_then_view_then_return(
    tmp_path: Path,
) -> None:
    async with shell(tmp_path, partition_for=_routes, terms_for=lookup(ACME)) as run:
        await run.processor.process(_records(0, 3))
        run.journal.add("mark", "returned")
        steps = run.journal.steps
        assert run.journal.phases(PHASES) == [
            "outputs",  # dead letters, re-routes, alerts: sent and acknowledged, then ...
            "state log",  # ... the state log, sent and acknowledged, then ...
            "day records",  # ... (local commit) the outbox: day records, then ...
            "view",  # ... the view, then ...
            "view progress",  # ... the progress line claiming it, then ...
            "returned",  # ... the input offsets may be committed.
        ]
        assert {s.topic for s in steps if s.kind == "send"} >= {
            TOPICS.dlq_topic,
            TOPICS.alerts_topic,
            TOPICS.calls_topic,
        }
        # The local store commits (offset 2) after the state log is acknowledged, before the
        # day records; nothing before that point had committed anything.
        committed: dict[str, set[int]] = {}
        for step in steps:
            committed.setdefault(PHASES.get(step.topic, step.topic), set()).add(step.committed)
        assert committed == {
            "outputs": {-1},
            "state log": {-1},
            "day records": {2},
            "view": {2},
            "view progress": {2},
            "returned": {2},
        }
        assert run.view.progress[0].applied == 2


async def test_the_view_gets_the_values_of_the_day_records_and_the_alert(tmp_path: Path) -> None:
    async with shell(tmp_path, partition_for=_routes, terms_for=lookup(ACME)) as run:
        await run.processor.process(_records(0, 3))
        records = run.producer.topic(TOPICS.buckets_topic)
        assert run.view.days == dict(parse_day_record(s.value or b"") for s in records)
        day = (T0 + HOUR) // DAY_MS
        assert run.view.days[DayKey("acme", "bot", day)].total == (2, 6_500_000)
        assert DayKey("globex", "bot", day) not in run.view.days  # re-routed, not counted here
        assert [doc_field for _, doc_field in run.view.docs] == ["acme:2026-11-27:50"]
        assert (
            run.view.metrics[counters.ALERTS_FIRED] == 1
            and run.view.metrics[counters.EVENTS_REROUTED] == 2
        )
        assert all(counters.is_known(name) for name in run.view.metrics), set(run.view.metrics)


async def test_records_at_or_below_the_fence_are_skipped(tmp_path: Path) -> None:
    async with shell(tmp_path / "once", partition_for=_routes) as once:
        await once.processor.process(_records(0, 6))
    async with shell(tmp_path / "again", partition_for=_routes) as again:
        await again.processor.process(_records(0, 4))
        # A rebalance seeks back to the committed offset: offsets 2 and 3 come again.
        await again.processor.process(_records(2, 4))
        assert again.view.days == once.view.days
        dead = [s.value for s in again.producer.topic(TOPICS.dlq_topic)]
        assert dead == [s.value for s in once.producer.topic(TOPICS.dlq_topic)]  # 2 and 5, once
        rerouted = [s.value for s in again.producer.topic(TOPICS.calls_topic)]
        assert len(rerouted) == len(once.producer.topic(TOPICS.calls_topic))


class _FirstOwner(NamedTuple):
    """What a partition's first owner left: its view, stored state, fence and state log."""

    view: dict[DayKey, DayUsage]
    stored: dict[str, dict[bytes, bytes]]
    fence: tuple[int, ...]
    log: StateLogReader


async def _first_owner(path: Path, records: list[SourceRecord]) -> _FirstOwner:
    async with shell(path, terms_for=lookup(ACME)) as first:
        await first.processor.process(records)
        return _FirstOwner(
            first.view.days,
            _stores_of(first),
            tuple(first.processor._owned[0].store.fence()),
            first.producer.state_log(TOPICS.state_topic),
        )


async def test_a_fresh_store_restored_from_the_state_log_holds_the_same_state(
    tmp_path: Path,
) -> None:
    records = _records(0, 6)
    first = await _first_owner(tmp_path / "first", records)
    async with shell(tmp_path / "second", state_log=first.log, terms_for=lookup(ACME)) as second:
        second.processor.assign([0])
        await second.processor.process(records)  # all at or below the restored fence
        assert _stores_of(second) == first.stored
        assert second.processor._owned[0].store.fence()[:3] == first.fence[:3]
        assert second.producer.sent == []  # nothing applied again, nothing republished
        # The restored days the view may lack are queued, and the next heartbeat sends them.
        await second.processor.heartbeat({0: 6}, T0)
        assert second.view.days == first.view
        assert second.view.progress[0].applied == 5


class _Killed(Exception):
    """A worker killed at this await (nothing of the processor catches it)."""


async def test_restored_days_are_queued_for_the_view_after_a_crash_right_after_the_restore(
    tmp_path: Path,
) -> None:
    records = _records(0, 6)
    first = await _first_owner(tmp_path / "first", records)
    log = first.log

    async def killed(partition: int) -> None:
        raise _Killed

    async with shell(tmp_path / "second", state_log=log, terms_for=lookup(ACME)) as second:
        # The restore completes (its fence is written), then the worker dies while it asks
        # the view what it already has, before the restored days are in the outbox.
        second.processor._read_view_progress = killed
        second.processor.assign([0])
        with pytest.raises(_Killed):
            await second.processor.process(records)
    async with shell(tmp_path / "second", state_log=log, terms_for=lookup(ACME)) as restart:
        restart.processor.assign([0])  # the local store is at the log's end: nothing to read
        await restart.processor.process(records)
        await restart.processor.heartbeat({0: 6}, T0)
        assert restart.view.days == first.view
        assert restart.view.progress[0].applied == 5


async def test_a_crash_before_the_state_log_replays_the_run_with_the_same_outputs(
    tmp_path: Path,
) -> None:
    def no_state_log(topic: str, value: bytes | None) -> KafkaError | None:
        return TopicAuthorizationFailedError() if topic == TOPICS.state_topic else None

    records = _records(0, 3)
    async with shell(tmp_path / "clean", partition_for=_routes) as clean:
        await clean.processor.process(records)
    async with shell(tmp_path / "crash", refuse=no_state_log, partition_for=_routes) as crash:
        with contextlib.suppress(TopicAuthorizationFailedError):
            await crash.processor.process(records)
        assert committed_offset(crash.processor, 0) == -1  # nothing committed locally
        assert crash.view.days == {} and crash.producer.topic(TOPICS.buckets_topic) == []
        outputs = _outputs(crash)
        assert outputs, "dead letters and re-routes went out before the state log failed"
    # The restart: the same store, a state log without the run.
    async with shell(tmp_path / "crash", partition_for=_routes) as restart:
        await restart.processor.process(records)
        assert _outputs(restart) == outputs  # the same dead letters and re-routes, once more
        assert restart.view.days == clean.view.days


async def test_a_partition_revoked_while_loading_is_dropped(tmp_path: Path) -> None:
    log = GatedStateLog()
    async with shell(tmp_path, state_log=log.read) as run:
        processor = run.processor
        processor.assign([0])
        task = asyncio.ensure_future(processor.process(_records(0, 3)))
        await log.reading.wait()  # the partition is loading: its store is open
        await processor.revoke([0])
        log.release.set()  # a load not cancelled would now finish and run the records
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert 0 not in processor.owned
        assert run.journal.steps == []  # nothing published, nothing in the view
        # The store is closed (RocksDB's lock released) and holds nothing of the records.
        store = PartitionStore.open(processor.store_path(0), StoreBudget(2**20, 2**20))
        try:
            assert store.fence().applied == -1
        finally:
            store.close()


async def test_records_of_a_partition_revoked_before_they_run_are_left_alone(
    tmp_path: Path,
) -> None:
    async with shell(tmp_path) as run:
        await run.processor.process(_records(0, 2))
        await run.processor.revoke([0])
        sent = len(run.producer.sent)
        await run.processor.process(_records(2, 2))  # fetched before the revocation
        assert len(run.producer.sent) == sent
        assert run.processor.owned == set()


async def test_a_failed_view_write_is_published_by_the_next_heartbeat(tmp_path: Path) -> None:
    async with shell(tmp_path) as run:
        run.view.refuse_days = True
        await run.processor.process(_records(0, 2))
        assert run.view.days == {}
        await run.processor.heartbeat({0: 2}, T0)  # Redis still refuses the days
        # A progress line never claims an offset whose days the view does not have.
        assert run.view.progress[0].applied < 0
        run.view.refuse_days = False
        await run.processor.heartbeat({0: 2}, T0)
        day = (T0 + HOUR) // DAY_MS
        assert run.view.days[DayKey("acme", "bot", day)].total == (2, 6_500_000)
        assert run.view.progress[0].applied == 1


async def test_a_day_still_waiting_in_the_outbox_is_published_before_it_expires(
    tmp_path: Path,
) -> None:
    async with shell(tmp_path, late_horizon_days=1) as run:
        run.view.refuse_days = True  # the day stays in the outbox
        await run.processor.process([rec(0, T0 + HOUR, [ev("a0", T0 + HOUR - MINUTE)])])
        run.view.refuse_days = False
        published = len(run.producer.topic(TOPICS.buckets_topic))
        mark = len(run.journal.steps)
        # Two days later: the first day leaves the state (and its outbox) with this commit,
        # the last chance to publish it: to the bucket topic before the state log, and to the
        # view.
        await run.processor.process([rec(1, T0 + 3 * DAY, [ev("a1", T0 + 3 * DAY - MINUTE)])])
        later = run.journal.steps[mark:]
        first_state_log = next(i for i, s in enumerate(later) if s.topic == TOPICS.state_topic)
        before = sum(
            s.kind == "send" and s.topic == TOPICS.buckets_topic for s in later[:first_state_log]
        )
        records = run.producer.topic(TOPICS.buckets_topic)[published : published + before]
        days = [parse_day_record(s.value or b"") for s in records]
        first_day = DayKey("acme", "bot", T0 // DAY_MS)
        assert [(key, usage.total) for key, usage in days] == [(first_day, (1, 1_000_000))]
        assert run.view.days[first_day].total == (1, 1_000_000)
        assert run.view.progress[0].applied == 1


_SEEDED_AT = T0 + 3 * DAY


class _Seeding:
    """A shell's view history (None: not readable now) and whether its state log is refused."""

    def __init__(self) -> None:
        self.history: int | None = None
        self.refusing = False

    def refuse(self, topic: str, value: bytes | None) -> KafkaError | None:
        refused = self.refusing and topic == TOPICS.state_topic
        return TopicAuthorizationFailedError() if refused else None

    async def read_history(self, account: str, start_ms: int, end_ms: int) -> int | None:
        return self.history


@contextlib.asynccontextmanager
async def _a_period_waiting_for_its_seed(tmp_path: Path) -> AsyncIterator[tuple[Shell, _Seeding]]:
    """acme's period opened after the state's first day moved past its start (3 records
    applied, none of them seeded: the view's history was not readable)."""
    seeding = _Seeding()
    async with shell(
        tmp_path, refuse=seeding.refuse, late_horizon_days=1, terms_for=lookup(ACME)
    ) as run:
        run.processor._read_history = seeding.read_history
        for offset, at_ms in enumerate((T0 + HOUR, _SEEDED_AT)):  # the first day moves on
            await run.processor.process(
                [rec(offset, at_ms, [ev(f"o{offset}", at_ms, account="o")])]
            )
        await run.processor.process([rec(2, _SEEDED_AT, [ev("a2", _SEEDED_AT - MINUTE)])])
        yield run, seeding


async def _seed_with_its_commit_refused(run: Shell, seeding: _Seeding, history: int) -> None:
    """A heartbeat seeds the period with ``history``: its alerts go out, its state-log records
    are refused; the partition is then loaded again."""
    seeding.history, seeding.refusing = history, True
    with pytest.raises(TopicAuthorizationFailedError):
        await run.processor.heartbeat({0: 3}, _SEEDED_AT)
    seeding.refusing = False
    await run.processor._loading[0]


async def test_a_seed_whose_commit_failed_is_made_again_from_what_is_durable(
    tmp_path: Path,
) -> None:
    async with _a_period_waiting_for_its_seed(tmp_path) as (run, seeding):
        processor = run.processor
        await _seed_with_its_commit_refused(run, seeding, 0)  # loaded again without the seed
        await processor.heartbeat({0: 3}, _SEEDED_AT)
        totals, _ = load_ledger(processor._owned[0].store)
        assert [
            (key.account_id, total.unseeded_before_ms == key.start_ms) for key, total in totals
        ] == [("acme", True)], "the seed was committed"


async def test_a_seed_lost_to_a_crash_fires_the_same_alert_again(tmp_path: Path) -> None:
    async with _a_period_waiting_for_its_seed(tmp_path) as (run, seeding):
        processor = run.processor
        # The seed adds 6 credits of history: 7 of 10 crosses 50%.
        await _seed_with_its_commit_refused(run, seeding, 6_000_000)
        # More of acme's usage arrives before the next heartbeat.
        await processor.process([rec(3, _SEEDED_AT + MINUTE, [ev("a3", _SEEDED_AT)])])
        await processor.heartbeat({0: 4}, _SEEDED_AT + MINUTE)
        contents: dict[bytes | None, set[bytes | None]] = {}
        for sent in run.producer.topic(TOPICS.alerts_topic):
            contents.setdefault(sent.key, set()).add(sent.value)
        assert b"acme:2026-11-27:50" in contents
        assert all(len(values) == 1 for values in contents.values()), "one alert id, one content"


def _backfill(offset: int, days: int, per_day: int) -> SourceRecord:
    """One record of ``days * per_day`` events: ``per_day`` on each of the ``days`` days
    before yesterday (older days of the outbox)."""
    now = T0 + HOUR
    items = [
        ev(f"b{offset}-{day}-{n}", now - (day + 2) * DAY, app=f"app{n % 4}")
        for day in range(days)
        for n in range(per_day)
    ]
    return rec(offset, now, items)


def _published_days(run: Shell) -> set[bytes | None]:
    return {sent.key for sent in run.producer.topic(TOPICS.buckets_topic)}


async def test_older_days_follow_a_run_at_one_per_events_and_idle_heartbeats_send_the_rest(
    tmp_path: Path,
) -> None:
    # 20 older days x 4 apps = 80 changed days in a run of 200 events; at one day per 50
    # events (plus one) the run publishes 5 of them and keeps 75 in the outbox.
    async with shell(tmp_path, outbox_events_per_day=50, outbox_days_per_run=30) as run:
        await run.processor.process([_backfill(0, 20, 10)])
        assert len(_published_days(run)) == 5
        assert len(run.processor._owned[0].outbox) == 75
        # The first heartbeat after a run leaves the older days to the runs.
        await run.processor.heartbeat({0: 1}, T0)
        assert len(_published_days(run)) == 5
        # Idle since: each heartbeat publishes up to outbox_days_per_run of them.
        await run.processor.heartbeat({0: 1}, T0)
        assert len(_published_days(run)) == 35
        await run.processor.heartbeat({0: 1}, T0)
        await run.processor.heartbeat({0: 1}, T0)
        assert len(_published_days(run)) == 80
        assert len(run.processor._owned[0].outbox) == 0
        assert len(run.view.days) == 80  # the view has every day too


def _commits_and_days(run: Shell) -> list[tuple[str, int | None]]:
    """(state log | day records, partition) in the order sent, repeats collapsed."""
    names = {TOPICS.state_topic: "state log", TOPICS.buckets_topic: "day records"}
    out: list[tuple[str, int | None]] = []
    for sent in run.producer.sent:
        if sent.topic not in names:
            continue
        step = (names[sent.topic], sent.partition if sent.topic == TOPICS.state_topic else None)
        if not out or out[-1] != step:
            out.append(step)
    return out


async def test_runs_in_flight_bounds_the_partitions_committing_at_once(tmp_path: Path) -> None:
    accounts = {"p0": 0, "p1": 1, "p2": 2}

    def fetch() -> list[SourceRecord]:
        return [
            rec(
                offset, T0 + HOUR, [ev(f"{a}-{offset}", T0, account=a)], key=a.encode(), partition=p
            )
            for a, p in accounts.items()
            for offset in range(2)
        ]

    async with shell(tmp_path / "one", partition_for=accounts.__getitem__, runs_in_flight=1) as run:
        run.processor.assign(accounts.values())
        await run.processor.process(fetch())
        # Each partition's run commits and publishes its days before the next one starts.
        assert _commits_and_days(run) == [
            ("state log", 0),
            ("day records", None),
            ("state log", 1),
            ("day records", None),
            ("state log", 2),
            ("day records", None),
        ]
    async with shell(tmp_path / "all", partition_for=accounts.__getitem__, runs_in_flight=3) as run:
        run.processor.assign(accounts.values())
        await run.processor.process(fetch())
        # All three commit while the first waits for Kafka.
        assert _commits_and_days(run)[:3] == [("state log", 0), ("state log", 1), ("state log", 2)]
