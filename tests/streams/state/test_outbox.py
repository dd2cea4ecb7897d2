"""The outbox: days changed by committed runs that still wait for the bucket topic and the view."""

from __future__ import annotations

from pathlib import Path

from core.days import DAY_MS, DayKey
from core.statecodec import day_key, day_range
from streams.state.outbox import Outbox
from streams.state.store import PartitionStore
from tests.core.support import T0
from tests.streams.state.support import budget, dump

D27 = T0 // DAY_MS


def name(day: int, app: str = "bot") -> bytes:
    return day_key(DayKey("acme", app, day))


def hot_from(day: int) -> bytes:
    return day_range(day, 0)[0]


def test_changed_days_are_marked_in_the_runs_batch(tmp_path: Path) -> None:
    store = PartitionStore.open(tmp_path / "p0", budget())
    outbox = Outbox(store)
    batch = store.batch()
    outbox.stage_changed(batch, [name(D27), name(D27 - 3)], 5, 1_000)
    assert dump(store)["outbox"] == {}  # only with the batch (the run's state) written
    store.write(batch)
    assert set(dump(store)["outbox"]) == {name(D27), name(D27 - 3)}
    store.close()
    again = PartitionStore.open(tmp_path / "p0", budget())
    reloaded = Outbox(again)
    assert reloaded.pending == {name(D27): (5, 1_000), name(D27 - 3): (5, 1_000)}
    assert len(reloaded) == 2
    assert reloaded.published(9, 2_000) == (4, 1_000)  # the heap is rebuilt on load
    again.close()


def test_the_earliest_unpublished_change_of_a_day_is_kept(tmp_path: Path) -> None:
    store = PartitionStore.open(tmp_path / "p0", budget())
    outbox = Outbox(store)
    batch = store.batch()
    outbox.stage_changed(batch, [name(D27)], 5, 1_000)
    outbox.stage_changed(batch, [name(D27)], 9, 3_000)
    store.write(batch)
    assert outbox.pending == {name(D27): (5, 1_000)}
    assert Outbox(store).pending == {name(D27): (5, 1_000)}
    store.close()


def test_select_takes_every_hot_day_then_the_longest_waiting(tmp_path: Path) -> None:
    store = PartitionStore.open(tmp_path / "p0", budget())
    outbox = Outbox(store)
    batch = store.batch()
    outbox.stage_changed(batch, [name(D27 - 9)], 3, 0)
    outbox.stage_changed(batch, [name(D27 - 5)], 1, 0)
    outbox.stage_changed(batch, [name(D27), name(D27 - 1)], 7, 0)
    outbox.stage_changed(batch, [name(D27 - 7)], 2, 0)
    store.write(batch)
    hot = hot_from(D27 - 1)
    # The current and previous day always go; older ones within the limit, oldest change first.
    assert outbox.select(0, hot) == [name(D27), name(D27 - 1)]
    assert outbox.select(1, hot) == [name(D27), name(D27 - 1), name(D27 - 5)]
    assert outbox.select(2, hot) == [name(D27), name(D27 - 1), name(D27 - 5), name(D27 - 7)]
    assert outbox.select(10, hot) == [
        name(D27),
        name(D27 - 1),
        name(D27 - 5),
        name(D27 - 7),
        name(D27 - 9),
    ]
    assert outbox.select(2, hot_from(D27 + 1)) == [name(D27 - 5), name(D27 - 7)]  # none hot
    store.close()


def test_published_claims_the_offset_before_the_first_waiting_change(tmp_path: Path) -> None:
    store = PartitionStore.open(tmp_path / "p0", budget())
    outbox = Outbox(store)
    assert outbox.published(12, 5_000) == (12, 5_000)  # nothing waits: the state's own
    batch = store.batch()
    outbox.stage_changed(batch, [name(D27 - 1)], 3, 300)
    outbox.stage_changed(batch, [name(D27)], 6, 600)
    store.write(batch)
    assert outbox.published(12, 5_000) == (2, 300)

    batch = store.batch()
    outbox.stage_published(batch, [name(D27 - 1)])
    store.write(batch)
    assert outbox.published(12, 5_000) == (5, 600)
    assert dump(store)["outbox"].keys() == {name(D27)}

    # Changed again later: the day waits from its new first offset, not its old one.
    batch = store.batch()
    outbox.stage_changed(batch, [name(D27 - 1)], 10, 1_000)
    outbox.stage_published(batch, [name(D27)])
    store.write(batch)
    assert outbox.published(12, 5_000) == (9, 1_000)
    batch = store.batch()
    outbox.stage_published(batch, [name(D27 - 1), name(D27 - 99)])  # unknown: ignored
    store.write(batch)
    assert outbox.published(12, 5_000) == (12, 5_000)
    assert len(outbox) == 0
    assert dump(store)["outbox"] == {}
    store.close()


def test_expired_days_are_forgotten_and_no_longer_hold_progress_back(tmp_path: Path) -> None:
    store = PartitionStore.open(tmp_path / "p0", budget())
    outbox = Outbox(store)
    batch = store.batch()
    outbox.stage_changed(batch, [name(D27 - 3), name(D27 - 2, "x")], 1, 100)
    outbox.stage_changed(batch, [name(D27)], 4, 400)
    store.write(batch)
    assert sorted(outbox.forget_before(D27 - 1)) == sorted([name(D27 - 3), name(D27 - 2, "x")])
    assert outbox.published(9, 900) == (3, 400)
    assert outbox.select(5, hot_from(D27 + 5)) == [name(D27)]
    batch = store.batch()
    PartitionStore.stage_expiry(batch, D27 - 1)  # the store drops them with their days
    store.write(batch)
    assert Outbox(store).pending == {name(D27): (4, 400)}
    store.close()
