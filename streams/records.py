"""Kafka records creditflow publishes for an applied batch: days, dead letters, re-routes.

Pure functions from a :class:`core.partition.BatchOutcome` to records, so their wire formats are
unit-tested without a broker.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from core.buckets import BUCKET_MS, iso_utc
from core.days import DAY_MS, SLOTS_PER_DAY, Bucket, DayKey, DayUsage, day_record, day_record_key
from core.events import Event, Rejection
from core.partition import BatchOutcome, BucketKey, BucketValue, PartitionState, SourceRecord

__all__ = (
    "REROUTED_FROM_HEADER",
    "OutRecord",
    "alert_records",
    "bucket_records",
    "changed_days",
    "dlq_record",
    "dlq_records",
    "reroute_records",
    "state_days",
)

REROUTED_FROM_HEADER = "creditflow-rerouted-from"
MAX_DLQ_ORIGINAL_BYTES = 256 * 1024

_encode = msgspec.json.encode
_lenient = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record to produce; ``partition`` None lets the key decide."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


# SHIM(view): replaced by the worker's day values
def state_days(
    state: PartitionState,
    days: Iterable[DayKey],
    changed: Mapping[BucketKey, BucketValue] | None = None,
) -> list[tuple[DayKey, DayUsage]]:
    """Each day's absolute value from the partition's in-memory buckets of that day.

    ``changed`` (a batch's changes) wins over the state: a bucket the batch changed may have
    been evicted by a later record of the same batch. Version: the day's newest bucket's.
    Known gap of this shim: buckets already evicted (below the late horizon's floor) are not
    in memory, so a late event on the floor's own day publishes that day without them.
    """
    changed = changed or {}
    found = []
    for key in days:
        base = key.day * DAY_MS
        slots = {}
        version = -1
        for slot in range(SLOTS_PER_DAY):
            bucket_key = (key.account_id, key.app_id, base + slot * BUCKET_MS)
            value = changed.get(bucket_key)
            cell = state.buckets.get(bucket_key) if value is None else value
            if cell is not None:
                slots[slot] = Bucket(cell[0], cell[1])
                version = max(version, cell[2])
        found.append((key, DayUsage(version, slots)))
    return found


# SHIM(view): replaced by the worker's day values
def changed_days(outcome: BatchOutcome, state: PartitionState) -> list[tuple[DayKey, DayUsage]]:
    """The days a batch changed, grouped from its changed buckets, with their whole value."""
    keys = {DayKey(account, app, start // DAY_MS) for account, app, start in outcome.changed}
    return state_days(state, keys, outcome.changed)


def bucket_records(
    days: Iterable[tuple[DayKey, DayUsage]], source_partition: int, topic: str
) -> list[OutRecord]:
    """One absolute-value day record (format 2) per changed (account, app, UTC day)."""
    return [
        OutRecord(topic, day_record_key(key), day_record(key, usage, source_partition))
        for key, usage in days
    ]


def dlq_records(outcome: BatchOutcome, calls_topic: str, dlq_topic: str) -> list[OutRecord]:
    """One dead-letter record per rejected event or unreadable record."""
    return [
        dlq_record(source, rejection, calls_topic, dlq_topic)
        for source, rejection in outcome.rejected
    ]


def dlq_record(
    source: SourceRecord, rejection: Rejection, calls_topic: str, dlq_topic: str
) -> OutRecord:
    """The dead-letter record of one rejection, with the original bytes and where they came from."""
    dlq_id = f"{calls_topic}:{source.partition}:{source.offset}"
    if rejection.index is not None:
        dlq_id += f":{rejection.index}"
    body: dict[str, Any] = {
        "dlq_id": dlq_id,
        "reason": rejection.reason.value,
        "detail": rejection.detail,
        "source": {
            "topic": calls_topic,
            "partition": source.partition,
            "offset": source.offset,
            "timestamp": iso_utc(source.timestamp_ms),
            "key": _text_or_none(source.key),
        },
        "index": rejection.index,
        "account_id": _account_of(rejection.raw),
        "rerouted_from": source.rerouted_from,
    }
    raw = rejection.raw
    if len(raw) > MAX_DLQ_ORIGINAL_BYTES:
        # Keep dead letters well under a record's size limit; the source coordinates above
        # still point at the whole original in the input topic.
        body["original_truncated"] = True
        body["original_bytes"] = len(raw)
        raw = raw[:MAX_DLQ_ORIGINAL_BYTES]
    text = _text_or_none(raw)
    if text is None:
        body["original_base64"] = base64.b64encode(raw).decode()
    else:
        body["original"] = text
    return OutRecord(dlq_topic, source.key, _encode(body))


def alert_records(outcome: BatchOutcome, topic: str) -> list[OutRecord]:
    """One record per newly crossed threshold, keyed by its deterministic ``alert_id``."""
    return [
        OutRecord(topic, alert.alert_id.encode(), _encode(alert.to_wire()))
        for alert in outcome.alerts
    ]


def reroute_records(outcome: BatchOutcome, calls_topic: str) -> list[OutRecord]:
    """Events that arrived on the wrong partition, re-published keyed by their account.

    One batch record per (source record, account), so the origin header stays exact.
    """
    records = []
    for target, items in outcome.rerouted.items():
        groups: dict[tuple[int, str], tuple[SourceRecord, list[Event]]] = {}
        for source, event in items:
            groups.setdefault((source.offset, event.account_id), (source, []))[1].append(event)
        for (_, account_id), (source, events) in groups.items():
            value = b"[" + b",".join(event.raw for event in events) + b"]"
            origin = source.rerouted_from or f"{calls_topic}:{source.partition}:{source.offset}"
            records.append(
                OutRecord(
                    calls_topic,
                    account_id.encode(),
                    value,
                    target,
                    [(REROUTED_FROM_HEADER, origin.encode())],
                )
            )
    return records


def _text_or_none(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _account_of(raw: bytes) -> str | None:
    """The account an unreadable or invalid event names, when it names one."""
    try:
        value = _lenient.decode(raw)
    except ValueError:  # msgspec.DecodeError, or UnicodeDecodeError inside a string
        return None
    if isinstance(value, dict) and isinstance(value.get("account_id"), str):
        return str(value["account_id"])[:64]
    return None
