"""Wire formats of what the worker publishes (pure functions, no broker)."""

import json

from core.days import Bucket, DayKey, DayUsage
from core.events import Reason, Rejection
from core.partition import SourceRecord
from streams.records import MAX_DLQ_ORIGINAL_BYTES, DeadLetters, day_records

SOURCE = SourceRecord(3, 41, 1_795_000_000_000, b"acme", b"{}")
LETTERS = DeadLetters("calls", "dlq", 2 * 1024 * 1024)
dlq_record = LETTERS.record


def test_day_records_are_absolute_values_keyed_by_account_app_and_day() -> None:
    day = 1_795_000_500_000 // 86_400_000  # 2026-11-18
    usage = DayUsage(41, {45: Bucket(3, 12_500_000), 2: Bucket(1, 1)})
    (record,) = day_records([(DayKey("acme", "bot", day), usage.columns())], 3, "buckets")
    assert record.topic == "buckets"
    assert record.key == b"acme|bot|2026-11-18"
    body = json.loads(record.value or b"")
    assert body == {
        "format": 2,
        "account_id": "acme",
        "app_id": "bot",
        "day": "2026-11-18",
        "version": 41,
        "calls": 4,
        "credits": "12.500001",
        "slots": [[2, 1, "0.000001"], [45, 3, "12.5"]],
        "source_partition": 3,
    }


def test_dead_letter_keeps_the_original_and_where_it_came_from() -> None:
    rejection = Rejection(Reason.TOO_LATE, "too old", 2, b'{"event_id":"e"}')
    body = json.loads(dlq_record(SOURCE, rejection).value or b"")
    assert body["dlq_id"] == "calls:3:41:2"
    assert body["reason"] == "too_late"
    assert body["original"] == '{"event_id":"e"}'
    assert body["source"]["offset"] == 41
    assert "original_truncated" not in body


def test_huge_originals_are_truncated_so_dead_letters_stay_publishable() -> None:
    raw = b"[" + b" " * (3 * MAX_DLQ_ORIGINAL_BYTES) + b"]"
    record = dlq_record(SOURCE, Rejection(Reason.RECORD_TOO_LARGE, "big", None, raw))
    body = json.loads(record.value or b"")
    assert body["original_truncated"] is True
    assert body["original_bytes"] == len(raw)
    assert len(body["original"]) == MAX_DLQ_ORIGINAL_BYTES
    assert len(record.value or b"") < MAX_DLQ_ORIGINAL_BYTES + 4096


def test_non_utf8_originals_travel_as_base64() -> None:
    body = json.loads(
        dlq_record(SOURCE, Rejection(Reason.INVALID_ENCODING, "x", None, b"\xff")).value or b""
    )
    assert body["original_base64"] == "/w=="
    assert "original" not in body
