"""Kafka records creditflow publishes for an applied run: days, dead letters, re-routes, alerts.

Pure functions from a :class:`core.partition.BatchOutcome` to records, so their wire formats are
unit-tested without a broker.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from core.buckets import iso_utc
from core.days import DayColumns, DayKey, day_record, day_record_key
from core.events import Event, Reason, Rejection
from core.excerpt import clip
from core.partition import BatchOutcome, SourceRecord

__all__ = (
    "DLQ_DETAIL_CHARS",
    "DLQ_KEY_BYTES",
    "MAX_DLQ_ORIGINAL_BYTES",
    "REROUTED_FROM_HEADER",
    "DeadLetters",
    "OutRecord",
    "alert_records",
    "day_records",
    "dlq_records",
    "reroute_records",
)

REROUTED_FROM_HEADER = "creditflow-rerouted-from"
MAX_DLQ_ORIGINAL_BYTES = 256 * 1024
"""Original bytes a dead letter keeps at most (fewer when their escaping would not fit)."""
DLQ_KEY_BYTES = 256
"""Bytes of the source record's key kept (as the dead letter's key and in ``source.key``)."""
DLQ_DETAIL_CHARS = 1000
"""Characters of a rejection's detail kept."""
_ORIGIN_CHARS = 300
# Room left below a topic's record limit for the record batch's framing, the key and headers.
_FRAMING_BYTES = 4096

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
    fallback: tuple[OutRecord, ...] = ()
    """Published instead when Kafka refuses this record as too large (minimal dead letters)."""


def day_records(
    days: Iterable[tuple[DayKey, DayColumns]], source_partition: int, topic: str
) -> list[OutRecord]:
    """One absolute-value day record per day (format 2, :mod:`core.days`)."""
    return [
        OutRecord(topic, day_record_key(key), day_record(key, day, source_partition))
        for key, day in days
    ]


def dlq_records(outcome: BatchOutcome, letters: DeadLetters) -> list[OutRecord]:
    """One dead-letter record per rejected event or unreadable record."""
    return [letters.record(source, rejection) for source, rejection in outcome.rejected]


@dataclass(frozen=True, slots=True)
class DeadLetters:
    """How rejections become dead-letter records, each within the DLQ topic's record limit.

    Everything a dead letter carries from the input is bounded: the detail, the source key (also
    the record's key), the re-route origin, and the original bytes, cut to what fits in
    ``max_bytes`` once JSON-escaped (a control character takes six bytes) and flagged
    ``original_truncated``: the source coordinates still point at the whole original.
    """

    calls_topic: str
    dlq_topic: str
    max_bytes: int
    """The DLQ topic's ``max.message.bytes`` (``CREDITFLOW_DLQ_MAX_RECORD_BYTES``)."""

    def record(self, source: SourceRecord, rejection: Rejection) -> OutRecord:
        """The dead letter of one rejection, with the original bytes and where they came from."""
        dlq_id = self._dlq_id(source, rejection.index)
        key = None if source.key is None else source.key[:DLQ_KEY_BYTES]
        where = self._source(source)
        where["key"] = _prefix_text(source.key, DLQ_KEY_BYTES)
        if source.key is not None and len(source.key) > DLQ_KEY_BYTES:
            where["key_truncated"] = True
            where["key_bytes"] = len(source.key)
        body: dict[str, Any] = {
            "dlq_id": dlq_id,
            "reason": rejection.reason.value,
            "detail": clip(rejection.detail, DLQ_DETAIL_CHARS),
            "source": where,
            "index": rejection.index,
            "account_id": _account_of(rejection.raw),
            "rerouted_from": _origin(source.rerouted_from) if source.rerouted_from else None,
        }
        room = self.max_bytes - _FRAMING_BYTES - len(key or b"") - len(_encode(body))
        room -= 100  # the original's field name and the truncation fields
        body.update(_original(rejection.raw, room))
        fallback = self.minimal(source, rejection.reason, rejection.index, len(rejection.raw))
        return OutRecord(self.dlq_topic, key, _encode(body), fallback=(fallback,))

    def minimal(
        self,
        source: SourceRecord,
        reason: Reason,
        index: int | None,
        size: int,
        refused: str = "the full dead letter",
    ) -> OutRecord:
        """A dead letter of a few hundred bytes: the reason and where the bytes are, no more.

        Published instead of a record that Kafka refused as too large, so that nothing is
        retried forever and nothing is dropped without a trace.
        """
        body = {
            "dlq_id": self._dlq_id(source, index),
            "reason": reason.value,
            "detail": f"Kafka refused {refused} as too large; the original is at the source",
            "source": self._source(source),
            "index": index,
            "original_truncated": True,
            "original_bytes": size,
        }
        return OutRecord(self.dlq_topic, None, _encode(body))

    def _dlq_id(self, source: SourceRecord, index: int | None) -> str:
        dlq_id = f"{self.calls_topic}:{source.partition}:{source.offset}"
        return dlq_id if index is None else f"{dlq_id}:{index}"

    def _source(self, source: SourceRecord) -> dict[str, Any]:
        return {
            "topic": self.calls_topic,
            "partition": source.partition,
            "offset": source.offset,
            "timestamp": iso_utc(source.timestamp_ms),
        }


def alert_records(outcome: BatchOutcome, topic: str) -> list[OutRecord]:
    """One record per newly crossed threshold, keyed by its deterministic ``alert_id``."""
    return [
        OutRecord(topic, alert.alert_id.encode(), _encode(alert.to_wire()))
        for alert in outcome.alerts
    ]


def reroute_records(
    outcome: BatchOutcome, letters: DeadLetters, max_record_bytes: int
) -> list[OutRecord]:
    """Events that arrived on the wrong partition, re-published keyed by their account.

    One batch record per (source record, account), so the origin header stays exact, split so
    that each fits ``max_record_bytes`` with room for its key and header (a re-routed record is
    input again, judged by the same limit). An event too large to travel alone is dead-lettered.
    """
    bound = max_record_bytes - _FRAMING_BYTES
    records = []
    for target, items in outcome.rerouted.items():
        groups: dict[tuple[int, str], tuple[SourceRecord, list[Event]]] = {}
        for source, event in items:
            groups.setdefault((source.offset, event.account_id), (source, []))[1].append(event)
        for (_, account_id), (source, events) in groups.items():
            origin = (
                source.rerouted_from or f"{letters.calls_topic}:{source.partition}:{source.offset}"
            )
            route = _Route(letters, source, account_id, target, _origin(origin))
            chunk: list[Event] = []
            size = 2
            for event in events:
                if len(event.raw) + 2 > bound:
                    records.append(route.too_large(event, bound))
                    continue
                if chunk and size + len(event.raw) + 1 > bound:
                    records.append(route.record(chunk))
                    chunk, size = [], 2
                chunk.append(event)
                size += len(event.raw) + 1
            if chunk:
                records.append(route.record(chunk))
    return records


@dataclass(frozen=True, slots=True)
class _Route:
    """Re-routed events of one source record and one account."""

    letters: DeadLetters
    source: SourceRecord
    account_id: str
    target: int
    origin: str

    def record(self, events: list[Event]) -> OutRecord:
        value = b"[" + b",".join(event.raw for event in events) + b"]"
        refused = "the re-routed record of this event"
        fallback = tuple(
            self.letters.minimal(self.source, Reason.RECORD_TOO_LARGE, e.index, len(e.raw), refused)
            for e in events
        )
        header = [(REROUTED_FROM_HEADER, self.origin.encode())]
        topic = self.letters.calls_topic
        return OutRecord(topic, self.account_id.encode(), value, self.target, header, fallback)

    def too_large(self, event: Event, bound: int) -> OutRecord:
        detail = (
            f"event of {len(event.raw)} bytes is too large to re-route to its account's "
            f"partition (at most {bound}); publish it keyed by its account"
        )
        rejection = Rejection(Reason.RECORD_TOO_LARGE, detail, event.index, event.raw)
        return self.letters.record(self.source, rejection)


def _text_or_none(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _prefix_text(raw: bytes | None, size: int) -> str | None:
    """The text of ``raw[:size]`` if ``raw`` is UTF-8 (a character cut at ``size`` left out)."""
    if raw is None or _text_or_none(raw) is None:
        return None
    return raw[:size].decode("utf-8", "ignore")


def _origin(text: str) -> str:
    """A re-route origin (``topic:partition:offset``) as kept: a header is the tenant's text."""
    return clip(text, _ORIGIN_CHARS)


def _original(raw: bytes, room: int) -> dict[str, Any]:
    """The original bytes as JSON fields, cut until they fit ``room`` bytes once encoded."""
    text = _text_or_none(raw)
    size = min(len(raw), MAX_DLQ_ORIGINAL_BYTES)
    while True:
        if text is not None:
            name, value = "original", text if size == len(raw) else _prefix_text(raw, size)
        else:
            name, value = "original_base64", base64.b64encode(raw[:size]).decode()
        encoded = len(_encode(value))
        if encoded <= room or size == 0:
            break
        # Escaping grows text at most six-fold, so a proportional cut converges in a few rounds.
        size = max(0, min(size - 1, size * room // encoded))
    fields: dict[str, Any] = {name: value}
    if size < len(raw):
        fields["original_truncated"] = True
        fields["original_bytes"] = len(raw)
    return fields


def _account_of(raw: bytes) -> str | None:
    """The account an unreadable or invalid event names, when it names one."""
    try:
        value = _lenient.decode(raw)
    except (ValueError, RecursionError):  # msgspec.DecodeError, invalid UTF-8, deep nesting
        return None
    if isinstance(value, dict) and isinstance(value.get("account_id"), str):
        return str(value["account_id"])[:64]
    return None
