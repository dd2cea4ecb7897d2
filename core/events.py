"""Call-event validation: bytes of a Kafka record (or an HTTP body) in, events or rejections out.

This is the hot path of the worker, so it decodes with msgspec straight into typed structs: one
pass, exact decimals (JSON numbers are read from their literal text, never through a float), and
the original bytes of every event kept for the dead-letter queue. ``models.events.CallEvent`` is
the same contract as a pydantic model; a test keeps the two in agreement.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Final

import msgspec

from core.buckets import to_epoch_ms
from core.money import CreditsError, micro_from_json_number, micro_from_text

__all__ = (
    "ID_PATTERN",
    "MAX_BATCH_EVENTS",
    "MAX_CALLS",
    "Event",
    "Reason",
    "Rejection",
    "decode_body",
    "decode_event",
)

ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_BATCH_EVENTS: Final = 1000
MAX_CALLS: Final = 1_000_000_000
MAX_ATTRIBUTES_BYTES: Final = 2048


class Reason(enum.StrEnum):
    """Machine-readable reasons for a rejection; they appear verbatim in the DLQ and the API."""

    INVALID_ENCODING = "invalid_encoding"
    INVALID_JSON = "invalid_json"
    INVALID_SHAPE = "invalid_shape"
    EMPTY_BATCH = "empty_batch"
    BATCH_TOO_LARGE = "batch_too_large"
    RECORD_TOO_LARGE = "record_too_large"
    INVALID_EVENT = "invalid_event"
    TOO_LATE = "too_late"
    TOO_FAR_IN_FUTURE = "too_far_in_future"
    FORBIDDEN_ACCOUNT = "forbidden_account"


@dataclass(frozen=True, slots=True)
class Event:
    """A valid call event, with credits in micro-credits and times in epoch milliseconds."""

    event_id: str
    account_id: str
    app_id: str
    occurred_ms: int
    micro: int
    calls: int
    raw: bytes
    index: int | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an event or a whole record was refused; ``index`` is None for the whole record."""

    reason: Reason
    detail: str
    index: int | None
    raw: bytes


# msgspec matches patterns with Python's re.search, where "$" also matches before a trailing
# newline ("acme\n" would pass); "\Z" does not. (pydantic's Rust engine reads "$" as the end.)
_Id = Annotated[str, msgspec.Meta(pattern=ID_PATTERN.removesuffix("$") + r"\Z")]
_Scalar = str | int | float | bool | None


class _EventFields(msgspec.Struct, forbid_unknown_fields=True):
    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    account_id: _Id
    app_id: _Id
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)]
    credits: msgspec.Raw
    calls: Annotated[int, msgspec.Meta(ge=0, le=MAX_CALLS)] = 1
    attributes: msgspec.Raw = msgspec.Raw(b"")


_event_decoder = msgspec.json.Decoder(_EventFields)
_batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_attributes_decoder = msgspec.json.Decoder(dict[str, _Scalar] | None)
_any_decoder = msgspec.json.Decoder()
_LOCATION = re.compile(r" - at `\$\.?([^`]*)`$")


def _explain(error: msgspec.ValidationError) -> str:
    """Turn msgspec's message into ``field: problem`` (``$.calls`` -> ``calls``)."""
    message = str(error)
    match = _LOCATION.search(message)
    if match is None:
        return message
    return f"{match.group(1)}: {message[: match.start()]}"


def _credits_micro(raw: bytes) -> int:
    text = raw.decode()
    if text.startswith('"'):
        inner = text[1:-1]
        if "\\" in inner:  # JSON escapes ("1\u0032" is "12"); the outer decode checked syntax
            inner = msgspec.json.decode(raw, type=str)
        return micro_from_text(inner)
    if text[0] in "-0123456789":
        return micro_from_json_number(text)
    raise CreditsError("credits must be a decimal string or a JSON number")


def decode_event(raw: bytes, index: int | None = None) -> Event | Rejection:
    """Validate one JSON event object."""
    try:
        return _decode_event(raw, index)
    except UnicodeDecodeError as error:  # msgspec raises it for invalid UTF-8 inside strings
        return Rejection(Reason.INVALID_ENCODING, f"event is not UTF-8: {error}", index, raw)


def _decode_event(raw: bytes, index: int | None) -> Event | Rejection:
    try:
        fields = _event_decoder.decode(raw)
    except msgspec.ValidationError as error:
        return Rejection(Reason.INVALID_EVENT, _explain(error), index, raw)
    except msgspec.DecodeError as error:
        return Rejection(Reason.INVALID_JSON, str(error), index, raw)
    except UnicodeDecodeError as error:
        return Rejection(Reason.INVALID_ENCODING, f"event is not UTF-8: {error}", index, raw)
    try:
        micro = _credits_micro(bytes(fields.credits))
    except CreditsError as error:
        return Rejection(Reason.INVALID_EVENT, f"credits: {error}", index, raw)
    if len(fields.attributes):
        problem = _attributes_problem(bytes(fields.attributes))
        if problem:
            return Rejection(Reason.INVALID_EVENT, f"attributes: {problem}", index, raw)
    return Event(
        event_id=fields.event_id,
        account_id=fields.account_id,
        app_id=fields.app_id,
        occurred_ms=to_epoch_ms(fields.occurred_at),
        micro=micro,
        calls=fields.calls,
        raw=raw,
        index=index,
    )


def _attributes_problem(raw: bytes) -> str | None:
    if len(raw) > MAX_ATTRIBUTES_BYTES:
        return f"must serialize to at most {MAX_ATTRIBUTES_BYTES} bytes, got {len(raw)}"
    try:
        _attributes_decoder.decode(raw)
    except msgspec.ValidationError:
        return "must be a flat object of strings, numbers, booleans or nulls"
    return None


def decode_body(value: bytes, max_bytes: int) -> list[Event | Rejection] | Rejection:
    """Validate a record value: one event object or an array of up to 1,000 of them.

    Returns the outcome of every event in order (each judged on its own), or one record-level
    rejection when the value as a whole cannot be read. Never raises: a worker must not stop
    on any input, so even an unforeseen decoding failure becomes a rejection that keeps the bytes.
    """
    try:
        return _decode_body(value, max_bytes)
    except Exception as error:
        return Rejection(Reason.INVALID_EVENT, f"unreadable record: {error!r}", None, value)


def _decode_body(value: bytes, max_bytes: int) -> list[Event | Rejection] | Rejection:
    if len(value) > max_bytes:
        return Rejection(
            Reason.RECORD_TOO_LARGE, f"record is {len(value)} bytes, limit {max_bytes}", None, value
        )
    head = value.lstrip()[:1]
    if head == b"[":
        try:
            items = _batch_decoder.decode(value)
        except msgspec.DecodeError as error:
            return _unreadable(value, error)
        if not items:
            return Rejection(
                Reason.EMPTY_BATCH, "a batch record needs at least one event", None, value
            )
        if len(items) > MAX_BATCH_EVENTS:
            return Rejection(
                Reason.BATCH_TOO_LARGE,
                f"a batch record holds at most {MAX_BATCH_EVENTS} events, got {len(items)}",
                None,
                value,
            )
        return [_decode_item(bytes(item), i) for i, item in enumerate(items)]
    if head == b"{":
        outcome = decode_event(value)
        if isinstance(outcome, Rejection) and outcome.reason in (
            Reason.INVALID_JSON,
            Reason.INVALID_ENCODING,
        ):
            return _unreadable(value, None)
        return [outcome]
    return _unreadable(value, None)


def _decode_item(raw: bytes, index: int) -> Event | Rejection:
    if raw[:1] != b"{":
        return Rejection(Reason.INVALID_EVENT, "each batch item must be a JSON object", index, raw)
    return decode_event(raw, index)


def _unreadable(value: bytes, error: msgspec.DecodeError | None) -> Rejection:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Rejection(Reason.INVALID_ENCODING, f"value is not UTF-8: {bad}", None, value)
    try:
        _any_decoder.decode(value)
    except msgspec.DecodeError as bad:
        return Rejection(Reason.INVALID_JSON, str(error or bad), None, value)
    return Rejection(
        Reason.INVALID_SHAPE, "value must be an event object or an array of events", None, value
    )
