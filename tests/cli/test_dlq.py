"""Re-drive of truncated dead letters takes the whole original from its source (finding 13).

Broker-free: the source record's value is given; tests/integration/test_security.py runs the
same command against the real stack.
"""

from __future__ import annotations

import json

import pytest

from cli.dlq import OriginalUnavailable, original_from_source
from models.dlq import DlqRecord

KEEP = 256 * 1024


def _event(size: int) -> bytes:
    return json.dumps(
        {"event_id": "big", "account_id": "acme", "app_id": "a", "attributes": {"x": "y" * size}},
        separators=(",", ":"),
    ).encode()


def _dead_letter(original: bytes, index: int | None) -> DlqRecord:
    return DlqRecord.model_validate(
        {
            "dlq_id": f"usage.calls.v1:3:41{'' if index is None else f':{index}'}",
            "reason": "invalid_event",
            "detail": "attributes: must be at most 2048 bytes serialized",
            "source": {
                "topic": "usage.calls.v1",
                "partition": 3,
                "offset": 41,
                "timestamp": "2026-11-27T05:13:34.568Z",
            },
            "index": index,
            "account_id": "acme",
            "original": original[:KEEP].decode(),
            "original_truncated": True,
            "original_bytes": len(original),
        }
    )


def test_finding_13_redrive_takes_a_truncated_record_whole_from_its_source() -> None:
    original = _event(300_000)
    assert original_from_source(_dead_letter(original, None), original) == original


def test_finding_13_redrive_cuts_the_batch_item_out_byte_for_byte() -> None:
    item = _event(300_000).replace(b'"a"', b'"a" ')  # unusual spacing survives the cut
    batch = b'[{"event_id":"ok","account_id":"acme"},\n  ' + item + b"  ]"
    assert original_from_source(_dead_letter(item, 1), batch) == item


@pytest.mark.parametrize(
    ("source", "why"),
    [
        (None, "compaction"),
        (b"not json at all", "not a JSON array"),
        (b"[1]", "no item 1"),
        (b'[{"other": 1}, {"event_id": "different"}]', "does not match"),
    ],
)
def test_finding_13_redrive_says_clearly_when_it_cannot(source: bytes | None, why: str) -> None:
    with pytest.raises(OriginalUnavailable, match=why):
        original_from_source(_dead_letter(_event(300_000), 1), source)


def test_a_source_of_another_size_is_not_taken_for_the_original() -> None:
    original = _event(300_000)
    longer = original[:-2] + b' "}}'
    with pytest.raises(OriginalUnavailable, match="does not match"):
        original_from_source(_dead_letter(original, None), longer)
