"""CloudEvents (OpenMeter's ingest format) in, creditflow call events out. Pure: no I/O.

The mapping (``docs/openmeter.md``): ``subject`` is the account; the app is ``data.app_id``
when present, else ``source`` made into a valid app id; ``data.credits`` (default 0) and
``data.calls`` (default 1) are copied as their literal JSON text, so a number never passes
through a float; the other ``data`` fields become attributes. Each mapped event is then judged
by :func:`core.events.decode_event`, exactly as an event sent to ``usage.calls.v1``.

The event id is derived from ``(source, id)``, which with the account (``subject``) makes
creditflow's dedup key ``(account_id, event_id)`` stand for OpenMeter's ``(subject, source,
id)``: ``om:<len(source)>:<source>:<id>`` when that fits in 128 characters (readable, and
injective thanks to the length prefix), else ``om#`` and the SHA-256 of that same text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import msgspec

from core.events import MAX_BATCH_EVENTS, Event, Rejection, decode_event
from core.excerpt import excerpt

__all__ = (
    "CONTENT_TYPES",
    "IngestError",
    "ItemError",
    "app_from_source",
    "event_id_of",
    "map_body",
)

CONTENT_TYPES: Final = (
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
    "application/json",
)
_MAX_EVENT_ID: Final = 128
_MAX_APP_ID: Final = 64
_NOT_IN_APP_ID = re.compile(r"[^A-Za-z0-9._-]+")


class IngestError(ValueError):
    """The request as a whole cannot be read (HTTP 400, or 415 for ``unsupported``)."""

    def __init__(self, message: str, *, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


@dataclass(frozen=True, slots=True)
class ItemError:
    """Why one CloudEvent of the request was refused."""

    index: int
    reason: str
    detail: str


class _CloudEvent(msgspec.Struct):
    # Unknown attributes are CloudEvents extensions: allowed, and ignored.
    id: str
    source: str
    specversion: str
    type: str
    subject: str
    time: str | None = None
    data: dict[str, msgspec.Raw] | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None


_event_decoder = msgspec.json.Decoder(_CloudEvent)
_items_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_text_decoder = msgspec.json.Decoder(str)
_ZERO = msgspec.Raw(b'"0"')  # an event without credits still counts as a call


def event_id_of(source: str, event_id: str) -> str:
    """Creditflow's ``event_id`` for OpenMeter's ``(source, id)``; deterministic, <= 128 chars."""
    readable = f"om:{len(source)}:{source}:{event_id}"
    if len(readable) <= _MAX_EVENT_ID:
        return readable
    return "om#" + hashlib.sha256(readable.encode()).hexdigest()


def app_from_source(source: str) -> str:
    """An app id made of a CloudEvents ``source``: invalid runs become ``-``, cut to 64 chars.

    ``@openmeter/sdk`` (the JavaScript SDK's default source) becomes ``openmeter-sdk``; a
    source with no usable character becomes ``default``.
    """
    app = _NOT_IN_APP_ID.sub("-", source).lstrip("._-")[:_MAX_APP_ID].rstrip("-")
    return app or "default"


def _media_type(content_type: str | None) -> str:
    media = (content_type or "application/json").partition(";")[0].strip().lower()
    if media not in CONTENT_TYPES:
        raise IngestError(
            f"content type {excerpt(media)} is not supported; "
            f"send one of {', '.join(CONTENT_TYPES)}",
            unsupported=True,
        )
    return media


def _items(body: bytes, media: str) -> list[bytes]:
    """The raw CloudEvents of the body."""
    head = body.lstrip()[:1]
    if head == b"[":
        if media == "application/cloudevents+json":
            raise IngestError("application/cloudevents+json carries one event object, not an array")
        try:
            items = _items_decoder.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError) as error:
            raise IngestError(f"the body is not valid JSON: {error}") from None
        except RecursionError:
            raise IngestError("the body is nested too deeply to be CloudEvents") from None
        if not items:
            raise IngestError("the batch is empty: send at least one event")
        if len(items) > MAX_BATCH_EVENTS:
            raise IngestError(f"a batch holds at most {MAX_BATCH_EVENTS} events, got {len(items)}")
        return [bytes(item) for item in items]
    if head == b"{":
        if media == "application/cloudevents-batch+json":
            raise IngestError("application/cloudevents-batch+json carries an array of events")
        return [body]
    raise IngestError("the body must be a CloudEvents JSON object or an array of them")


def _text(raw: msgspec.Raw, name: str) -> str:
    try:
        return _text_decoder.decode(raw)
    except msgspec.DecodeError:
        raise ValueError(f"data.{name} must be a string") from None


def _call_event(cloud: _CloudEvent, now_ms: int) -> bytes:
    """The call event (DESIGN.md section 2 format) of a CloudEvent; ValueError if unmappable."""
    for name in ("id", "source", "specversion", "type", "subject"):
        if not getattr(cloud, name):
            raise ValueError(f"{name}: must not be empty")
    data = dict(cloud.data or {})
    app_raw = data.pop("app_id", None)
    app_id = app_from_source(cloud.source) if app_raw is None else _text(app_raw, "app_id")
    occurred = cloud.time or datetime.fromtimestamp(now_ms / 1000, UTC).isoformat(
        timespec="milliseconds"
    )
    fields: dict[str, object] = {
        "event_id": event_id_of(cloud.source, cloud.id),
        "account_id": cloud.subject,
        "app_id": app_id,
        "occurred_at": occurred,
        "credits": data.pop("credits", _ZERO),
    }
    calls = data.pop("calls", None)
    if calls is not None:
        fields["calls"] = calls
    if data:
        fields["attributes"] = data
    return msgspec.json.encode(fields)


def _map_item(raw: bytes, index: int, now_ms: int) -> Event | ItemError:
    try:
        cloud = _event_decoder.decode(raw)
    except msgspec.ValidationError as error:
        return ItemError(index, "invalid_cloudevent", str(error).replace("`$.", "`"))
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        return ItemError(index, "invalid_json", str(error))
    except RecursionError:
        return ItemError(index, "invalid_json", "nested too deeply to be a CloudEvent")
    try:
        mapped = _call_event(cloud, now_ms)
    except ValueError as error:
        return ItemError(index, "invalid_cloudevent", str(error))
    outcome = decode_event(mapped, index)
    if isinstance(outcome, Rejection):
        return ItemError(index, outcome.reason.value, _in_cloudevent_terms(outcome.detail))
    return outcome


# Call-event fields as the CloudEvent names them, for error messages.
_FIELD_NAMES: Final = {
    "account_id": "subject",
    "app_id": "data.app_id (or source)",
    "occurred_at": "time",
    "credits": "data.credits",
    "calls": "data.calls",
    "attributes": "data",
}


def _in_cloudevent_terms(detail: str) -> str:
    field, colon, rest = detail.partition(":")
    name = _FIELD_NAMES.get(field)
    return f"{name}:{rest}" if colon and name else detail


def map_body(body: bytes, content_type: str | None, now_ms: int) -> list[Event | ItemError]:
    """Every CloudEvent of an ingest request, mapped and validated, in order.

    Raises :class:`IngestError` when the request as a whole is unreadable. An event without
    ``time`` gets ``now_ms``. Each returned :class:`core.events.Event` keeps the mapped call
    event's bytes in ``raw``: those are what goes to Kafka.
    """
    media = _media_type(content_type)
    items = _items(body, media)
    return [_map_item(raw, index, now_ms) for index, raw in enumerate(items)]
