"""Random streams, batchings, crashes and restores against a brute-force model.

A crash is the worst moment of the commit order (``streams/processor.py``): the run's
per-record outputs (alerts, expiring days) are out, its state-log records reached Kafka only
as a prefix of ``Commit.records``, and its local batch was never written. The next owner
opens the same store (a catch-up), or none (a full restore, from the log as written or as
compaction leaves it), resumes the input anywhere at or below its fence, and goes on with
another batching. Whatever happened, the final store, the fence, the period total, the
alerts and what the serving view was given must be what the slow and obvious model says:
nothing counted twice, nothing lost.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from core.alerts import Alert
from core.billing import Explicit, crossed
from core.buckets import BUCKET_MS, to_epoch_ms
from core.days import DAY_MS, Bucket, DayKey, DayUsage
from core.ledger import PeriodKey
from core.partition import Limits, SourceRecord
from core.statecodec import TAG_BYTES, decode_day, id_key, parse_day_key
from tests.core.support import FAST, HOUR, MINUTE, T0, event_streams, terms
from tests.streams.state.support import StateLog, Worker, dump, lookup

M = MINUTE
SMALL = Limits(late_horizon_ms=HOUR, future_tolerance_ms=5 * M)
ROUTES = {"acme": 0, "globex": 0, "other": 1}
PERIOD = PeriodKey("acme", T0, T0 + 30 * 24 * HOUR)  # 2026-11-27 .. 2026-12-27, UTC
THRESHOLDS = (50, 80, 100)


@dataclass
class Model:
    """What the stream must produce, computed event by event without any of the machinery."""

    days: dict[DayKey, DayUsage] = field(default_factory=dict)
    """Every day ever counted, expired ones included (what the view must end with)."""
    live: dict[DayKey, DayUsage] = field(default_factory=dict)
    ids: set[bytes] = field(default_factory=set)
    watermark: int = 0
    total: int = 0
    alerts: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    """alert id -> (event id, used, crossed at)."""


def model(records: list[SourceRecord], allotment: int) -> Model:
    out = Model()
    seen: set[tuple[str, str, int]] = set()
    cells: dict[DayKey, dict[int, list[int]]] = {}
    versions: dict[DayKey, int] = {}
    for record in records:
        out.watermark = max(out.watermark, record.timestamp_ms)
        floor = out.watermark - SMALL.late_horizon_ms
        ceiling = out.watermark + SMALL.future_tolerance_ms
        value = json.loads(record.value)
        for doc in value if isinstance(value, list) else [value]:
            occurred = to_epoch_ms(datetime.fromisoformat(doc["occurred_at"]))
            day = occurred // DAY_MS
            dedup = (doc["account_id"], doc["event_id"], day)
            if doc["calls"] < 0 or ROUTES[doc["account_id"]] != 0:
                continue
            if not floor <= occurred <= ceiling or dedup in seen:
                continue
            seen.add(dedup)
            whole, fraction = doc["credits"].split(".")
            micro = int(whole) * 1_000_000 + int(fraction)
            key = DayKey(doc["account_id"], doc["app_id"], day)
            slot = cells.setdefault(key, {}).setdefault(occurred % DAY_MS // BUCKET_MS, [0, 0])
            slot[0] += doc["calls"]
            slot[1] += micro
            versions[key] = record.offset
            if doc["account_id"] == "acme" and PERIOD.start_ms <= occurred < PERIOD.end_ms:
                out.total += micro
                for threshold in THRESHOLDS:
                    name = f"acme:2026-11-27:{threshold}"
                    if name not in out.alerts and crossed(out.total, allotment, threshold):
                        out.alerts[name] = (doc["event_id"], out.total, record.timestamp_ms)
    first_day = (out.watermark - SMALL.late_horizon_ms) // DAY_MS
    out.days = {
        key: DayUsage(versions[key], {s: Bucket(*v) for s, v in slots.items()})
        for key, slots in cells.items()
    }
    out.live = {key: usage for key, usage in out.days.items() if key.day >= first_day}
    out.ids = {id_key(day, account, event) for account, event, day in seen if day >= first_day}
    return out


class View:
    """What the serving view holds: per day, the value of the highest version it was given."""

    def __init__(self) -> None:
        self.days: dict[DayKey, DayUsage] = {}

    def give(self, days: dict[DayKey, DayUsage]) -> None:
        for key, usage in days.items():
            known = self.days.get(key)
            if known is None or known.version < usage.version:  # as view/upsert.lua
                self.days[key] = usage


def stored_days(worker: Worker) -> dict[DayKey, DayUsage]:
    return {
        parse_day_key(name): decode_day(value[TAG_BYTES:])
        for name, value in dump(worker.store)["days"].items()
    }


@FAST
@given(records=event_streams(sorted(ROUTES)), allotment=st.integers(0, 20 * 10**6), data=st.data())
def test_crashes_and_restores_anywhere_count_everything_exactly_once(
    records: list[SourceRecord], allotment: int, data: st.DataObject
) -> None:
    spec = terms(period=Explicit(date(2026, 11, 27), date(2026, 12, 27)), thresholds=THRESHOLDS)
    spec = dataclasses.replace(spec, allotment_micro=allotment)
    expected = model(records, allotment)
    view = View()
    emitted: list[Alert] = []
    log = StateLog()
    with tempfile.TemporaryDirectory() as directory:
        path, stores = Path(directory) / "s0", 0

        def open_worker() -> Worker:
            worker = Worker(
                path, log, SMALL, partition_for=ROUTES.__getitem__, terms_for=lookup(spec)
            )
            view.give(stored_days(worker))  # a restored store's days are queued for the view
            return worker

        worker = open_worker()
        for _ in range(data.draw(st.integers(0, 3), label="crashes")):
            start = data.draw(st.integers(0, worker.state.applied + 1), label="resume at")
            rest = records[start:]
            cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(rest))), max_size=4))))
            runs = [rest[lo:hi] for lo, hi in zip([0, *cuts], [*cuts, len(rest)], strict=True)]
            crash_at = data.draw(st.integers(0, len(runs) - 1), label="crash in run")
            for run in runs[:crash_at]:
                outcome = worker.run(run)
                emitted.extend(outcome.alerts)
                view.give(outcome.decoded_days())
            outcome, commit = worker.prepare(runs[crash_at])
            emitted.extend(outcome.alerts)  # step 2 was done before the crash
            if outcome.expired_before_day is not None:
                view.give(
                    {
                        k: v
                        for k, v in outcome.decoded_days().items()
                        if k.day < outcome.expired_before_day
                    }
                )
            if commit is not None:
                published = data.draw(st.integers(0, len(commit.records)), label="published")
                log.append(commit.records[:published])
            worker.close()
            how = data.draw(st.sampled_from(["reopen", "restore", "compacted"]), label="then")
            if how != "reopen":
                stores += 1
                path = Path(directory) / f"s{stores}"
                if how == "compacted":
                    log = log.compacted()
            worker = open_worker()

        # Finally the rest of the stream, without a crash.
        start = data.draw(st.integers(0, worker.state.applied + 1), label="last resume at")
        rest = records[start:]
        cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(rest))), max_size=4))))
        for lo, hi in zip([0, *cuts], [*cuts, len(rest)], strict=True):
            outcome = worker.run(rest[lo:hi])
            emitted.extend(outcome.alerts)
            view.give(outcome.decoded_days())

        assert worker.state.applied == len(records) - 1
        assert worker.state.watermark_ms == expected.watermark
        assert stored_days(worker) == expected.live
        assert set(dump(worker.store)["ids"]) == expected.ids
        assert view.days == expected.days
        total = worker.state.ledger.totals.get(PERIOD)
        assert (0 if total is None else total.micro) == expected.total
        # Every alert exactly once in effect: each emission of an id is the model's crossing.
        assert {alert.alert_id for alert in emitted} == set(expected.alerts)
        for alert in emitted:
            assert (alert.event_id, alert.used_micro, alert.crossed_at_ms) == expected.alerts[
                alert.alert_id
            ], alert.alert_id
        worker.close()
