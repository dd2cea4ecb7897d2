"""Wire formats of what the worker publishes (pure functions, no broker)."""

import json

from core.days import DAY_MS, Bucket, DayKey, DayUsage, parse_day_record
from core.events import Reason, Rejection
from core.partition import BatchOutcome, BucketValue, Limits, PartitionState, SourceRecord
from streams.records import MAX_DLQ_ORIGINAL_BYTES, bucket_records, changed_days, dlq_record

SOURCE = SourceRecord(3, 41, 1_795_000_000_000, b"acme", b"{}")


def test_day_records_hold_the_whole_day_from_the_partition_state() -> None:
    changed_at = 1_795_000_500_000  # 2026-11-18T11:15Z, slot 45
    midnight = changed_at - changed_at % DAY_MS
    state = PartitionState(3, Limits())
    state.buckets[("acme", "bot", changed_at)] = [3, 12_500_000, 41]
    state.buckets[("acme", "bot", midnight)] = [1, 500_000, 7]  # same day, not in this batch
    state.buckets[("acme", "bot", midnight + DAY_MS)] = [9, 9, 9]  # the next day: untouched
    outcome = BatchOutcome(first_offset=-1, last_offset=41)
    outcome.changed[("acme", "bot", changed_at)] = BucketValue(3, 12_500_000, 41)
    # Changed by the batch, then evicted by a later record of it: still part of the day.
    outcome.changed[("acme", "bot", midnight + 3 * 900_000)] = BucketValue(2, 1, 40)
    (record,) = bucket_records(changed_days(outcome, state), 3, "buckets")
    assert record.key == b"acme|bot|2026-11-18"
    key, usage = parse_day_record(record.value or b"")
    assert key == DayKey("acme", "bot", midnight // DAY_MS)
    assert usage == DayUsage(
        41, {0: Bucket(1, 500_000), 3: Bucket(2, 1), 45: Bucket(3, 12_500_000)}
    )
    body = json.loads(record.value or b"")
    assert (body["format"], body["calls"], body["credits"], body["source_partition"]) == (
        2,
        6,
        "13.000001",
        3,
    )


def test_dead_letter_keeps_the_original_and_where_it_came_from() -> None:
    rejection = Rejection(Reason.TOO_LATE, "too old", 2, b'{"event_id":"e"}')
    body = json.loads(dlq_record(SOURCE, rejection, "calls", "dlq").value or b"")
    assert body["dlq_id"] == "calls:3:41:2"
    assert body["reason"] == "too_late"
    assert body["original"] == '{"event_id":"e"}'
    assert body["source"]["offset"] == 41
    assert "original_truncated" not in body


def test_huge_originals_are_truncated_so_dead_letters_stay_publishable() -> None:
    raw = b"[" + b" " * (3 * MAX_DLQ_ORIGINAL_BYTES) + b"]"
    record = dlq_record(
        SOURCE, Rejection(Reason.RECORD_TOO_LARGE, "big", None, raw), "calls", "dlq"
    )
    body = json.loads(record.value or b"")
    assert body["original_truncated"] is True
    assert body["original_bytes"] == len(raw)
    assert len(body["original"]) == MAX_DLQ_ORIGINAL_BYTES
    assert len(record.value or b"") < MAX_DLQ_ORIGINAL_BYTES + 4096


def test_non_utf8_originals_travel_as_base64() -> None:
    body = json.loads(
        dlq_record(SOURCE, Rejection(Reason.INVALID_ENCODING, "x", None, b"\xff"), "c", "d").value
        or b""
    )
    assert body["original_base64"] == "/w=="
    assert "original" not in body
