"""Dead letters stay within the DLQ topic's record limit whatever the input (finding 2 of issue 9).

Broker-free: the records are built and measured; ``tests/integration/test_worker_faults.py``
sends the same inputs through a real worker.
"""

from __future__ import annotations

import base64
import json

import pytest

from core.events import Event, Reason, Rejection, decode_body
from core.partition import BatchOutcome, SourceRecord
from models.dlq import DlqRecord
from streams.records import DLQ_KEY_BYTES, DeadLetters, reroute_records

MIB = 1024 * 1024
T = 1_795_000_000_000


def _event_bytes(credits: str) -> bytes:
    event = {
        "event_id": "e1",
        "account_id": "acme",
        "app_id": "bot",
        "occurred_at": "2026-11-18T11:15:00Z",
        "credits": credits,
    }
    return json.dumps(event, ensure_ascii=False).encode()


def _issue_inputs() -> list[tuple[bytes | None, bytes]]:
    """The two records of the issue: one under 1 MiB whose credits are 250k U+10FFFF, and one
    with a 300 KB key and 600 KB of \\x01 (each \\x01 takes six bytes once JSON-escaped)."""
    return [
        (b"acme", _event_bytes("\U0010ffff" * 250_000)),
        (b"\x01" * 300_000, b"\x01" * 600_000),
    ]


def _dead_letters(max_bytes: int) -> list[tuple[bytes, bytes, bytes]]:
    """(key, value, input value) of the dead letter of each issue input."""
    letters = DeadLetters("calls", "dlq", max_bytes)
    out = []
    for offset, (key, value) in enumerate(_issue_inputs()):
        assert len(value) < MIB
        source = SourceRecord(0, offset, T, key, value)
        decoded = decode_body(value, MIB)
        rejections = [decoded] if isinstance(decoded, Rejection) else decoded
        for rejection in rejections:
            assert isinstance(rejection, Rejection)
            record = letters.record(source, rejection)
            assert record.topic == "dlq" and record.value is not None
            out.append((record.key or b"", record.value, value))
    return out


@pytest.mark.parametrize("max_bytes", [2 * MIB, 64 * 1024], ids=["2MiB", "64KiB"])
def test_finding_02_dead_letters_of_the_issue_inputs_fit_the_dlq_limit(max_bytes: int) -> None:
    letters = _dead_letters(max_bytes)
    assert len(letters) == 2
    for key, value, original in letters:
        assert len(key) + len(value) <= max_bytes - 4096  # room left for the batch framing
        body = DlqRecord.model_validate_json(value)
        assert len(body.detail) <= 1_000
        assert body.original_truncated and body.original_bytes == len(original)
        assert body.original is not None and original.startswith(body.original.encode())
    (_, first, _), (key, second, _) = letters
    assert DlqRecord.model_validate_json(first).reason is Reason.INVALID_EVENT
    cut = DlqRecord.model_validate_json(second)
    assert cut.reason is Reason.INVALID_JSON
    assert key == b"\x01" * DLQ_KEY_BYTES
    assert cut.source.key == "\x01" * DLQ_KEY_BYTES
    assert cut.source.key_truncated and cut.source.key_bytes == 300_000


def test_a_cut_original_ends_on_a_whole_character_and_binary_stays_base64() -> None:
    letters = DeadLetters("calls", "dlq", 64 * 1024)
    source = SourceRecord(0, 1, T, None, b"")
    text = ("é" * 100_000).encode()
    body = json.loads(
        letters.record(source, Rejection(Reason.INVALID_JSON, "x", None, text)).value or b""
    )
    assert body["original_truncated"] and text.startswith(body["original"].encode())
    binary = b"\xff" * 100_000
    body = json.loads(
        letters.record(source, Rejection(Reason.INVALID_ENCODING, "x", None, binary)).value or b""
    )
    assert set(base64.b64decode(body["original_base64"])) == {0xFF}
    assert body["original_bytes"] == 100_000


def test_the_fallback_of_a_dead_letter_is_minimal_and_still_a_dead_letter() -> None:
    letters = DeadLetters("calls", "dlq", 2 * MIB)
    source = SourceRecord(2, 7, T, b"k" * 1000, b"", "x" * 10_000)
    record = letters.record(source, Rejection(Reason.INVALID_EVENT, "y" * 5_000, 3, b"z" * MIB))
    (fallback,) = record.fallback
    minimal = DlqRecord.model_validate_json(fallback.value or b"")
    assert (minimal.dlq_id, minimal.reason, minimal.index) == (
        "calls:2:7:3",
        Reason.INVALID_EVENT,
        3,
    )
    assert minimal.original is None and minimal.original_bytes == MIB
    assert len(fallback.value or b"") < 1_000
    full = DlqRecord.model_validate_json(record.value or b"")
    assert full.rerouted_from is not None and len(full.rerouted_from) < 400


def _event(index: int, raw: bytes) -> Event:
    return Event(f"e{index}", "acme", "bot", T, 1, 1, index, raw)


def test_reroutes_are_split_to_fit_and_an_event_too_large_to_travel_is_dead_lettered() -> None:
    letters = DeadLetters("calls", "dlq", 2 * MIB)
    source = SourceRecord(1, 9, T, None, b"")
    small = [_event(i, b"{" + b" " * 30_000 + b"}") for i in range(10)]
    huge = _event(10, b"{" + b" " * 200_000 + b"}")
    outcome = BatchOutcome(first_offset=-1, last_offset=9)
    outcome.rerouted[5] = [(source, event) for event in [*small, huge]]
    records = reroute_records(outcome, letters, 100_000)
    reroutes = [r for r in records if r.topic == "calls"]
    assert all(len(r.value or b"") <= 100_000 - 4096 for r in reroutes)
    assert sum(len(json.loads(r.value or b"")) for r in reroutes) == 10
    assert all(r.partition == 5 and r.key == b"acme" and len(r.fallback) for r in reroutes)
    (dead,) = [r for r in records if r.topic == "dlq"]
    body = DlqRecord.model_validate_json(dead.value or b"")
    assert (body.reason, body.index, body.dlq_id) == (Reason.RECORD_TOO_LARGE, 10, "calls:1:9:10")
