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
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Final, cast

import msgspec

from core.buckets import to_epoch_ms
from core.excerpt import clip, excerpt
from core.jsontext import repeated_key, split_array
from core.money import MAX_EVENT_MICRO, CreditsError, micro_from_json_number, micro_from_text

__all__ = (
    "ID_PATTERN",
    "MAX_BATCH_EVENTS",
    "MAX_CALLS",
    "Event",
    "Reason",
    "Rejection",
    "decode_body",
    "decode_event",
    "is_id",
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
    DUPLICATE_KEY = "duplicate_key"


@dataclass(slots=True)
class Event:
    """A valid call event, with credits in micro-credits and times in epoch milliseconds.

    Not frozen: a frozen dataclass sets each field through object.__setattr__, and the worker
    makes one of these per event. ``source`` holds the event's own bytes, or,
    when ``in_batch``, its whole batch record, from which :attr:`raw` is cut only if needed
    (dead letters, re-routing): splitting every batch up front would double the decoding cost.
    """

    event_id: str
    account_id: str
    app_id: str
    occurred_ms: int
    micro: int
    calls: int
    index: int | None = None
    source: bytes = b""
    in_batch: bool = False

    @property
    def raw(self) -> bytes:
        """The event's original bytes, exactly as they appeared in the record."""
        if self.in_batch and self.index is not None:
            return _split(self.source)[self.index]
        return self.source


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
# The default of ``calls`` as decoded: an absent field must be told from "calls": 1, to count
# the keys an event has (see _keys_unrepeated). It is 1 once decoded (msgspec checks only
# values it reads against ge=0, never a default).
_NO_CALLS: Final = -1


class _EventFields(msgspec.Struct, forbid_unknown_fields=True):
    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    account_id: _Id
    app_id: _Id
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)]
    credits: msgspec.Raw
    calls: Annotated[int, msgspec.Meta(ge=0, le=MAX_CALLS)] = _NO_CALLS
    attributes: msgspec.Raw = msgspec.Raw(b"")


class _CommonFields(msgspec.Struct, forbid_unknown_fields=True):
    """The shape nearly every event has: string credits, ids checked outside msgspec.

    Decoding a batch into these is the worker's fast path. Anything else (a JSON number for
    credits, any invalid item) falls back to :class:`_EventFields`, item by item, so both paths
    accept and refuse exactly the same events.
    """

    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    account_id: str
    app_id: str
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)]
    credits: str
    calls: Annotated[int, msgspec.Meta(ge=0, le=MAX_CALLS)] = _NO_CALLS
    attributes: msgspec.Raw = msgspec.Raw(b"")


_event_decoder = msgspec.json.Decoder(_EventFields)
_common_decoder = msgspec.json.Decoder(list[_CommonFields])
_single_decoder = msgspec.json.Decoder(_CommonFields)
_ID = re.compile(ID_PATTERN.removesuffix("$") + r"\Z")
_known_ids: set[str] = set()
_known_credits: dict[str, int] = {}
"""Credits strings of fast-path events already parsed, and their micro-credits."""
_CACHE_ENTRIES: Final = 100_000
_batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_attributes_decoder = msgspec.json.Decoder(dict[str, _Scalar] | None)
_any_decoder = msgspec.json.Decoder()


def is_id(text: str) -> bool:
    """Whether ``text`` is a valid account or app id (:data:`ID_PATTERN`, no trailing newline)."""
    return _ID.match(text) is not None


_LOCATION = re.compile(r" - at `\$\.?([^`]*)`$")


def _explain(error: msgspec.ValidationError) -> str:
    """Turn msgspec's message into ``field: problem`` (``$.calls`` -> ``calls``).

    Clipped: the message names unknown fields, and a field name is the tenant's text.
    """
    message = str(error)
    match = _LOCATION.search(message)
    if match is None:
        return clip(message)
    return clip(f"{match.group(1)}: {message[: match.start()]}")


# occurred_at must fall in [1970, 9000): far outside any horizon, yet never near datetime's
# limits, so arithmetic and formatting on an event's time cannot overflow.
_LAST_MS = to_epoch_ms(datetime(9000, 1, 1, tzinfo=UTC))
_TOO_DEEP = "nested too deeply (an event is a flat object with one flat object, attributes)"


@lru_cache(maxsize=16)
def _split(value: bytes) -> list[bytes]:
    """The exact bytes of each item of a batch record (cached: rejections come in runs)."""
    return _items(value) or []


def _items(value: bytes) -> list[bytes] | None:
    """The items of a batch record; None when it is not a JSON array."""
    try:
        return [bytes(item) for item in _batch_decoder.decode(value)]
    except RecursionError:
        # An item nests deeper than msgspec can even skip: find the items without recursion,
        # so that the others are still judged on their own.
        return split_array(value)
    except msgspec.DecodeError:
        return None


def _credits_micro(raw: bytes) -> int:
    # The strict path: plain strings are parsed by _fast before an item gets here.
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
        return Rejection(Reason.INVALID_JSON, clip(str(error)), index, raw)
    except UnicodeDecodeError as error:
        return Rejection(Reason.INVALID_ENCODING, f"event is not UTF-8: {error}", index, raw)
    except RecursionError:
        return Rejection(Reason.INVALID_EVENT, _TOO_DEEP, index, raw)
    attributes = bytes(fields.attributes)
    # Keys of the event itself: one structural comma fewer than keys, unless a string holds
    # commas too (then the exact check decides).
    keys = 5 + (fields.calls != _NO_CALLS) + (len(attributes) > 0)
    if raw.count(b",") - attributes.count(b",") != keys - 1:
        repeated = repeated_key(raw)
        if repeated is not None:
            return _duplicate(repeated, index, raw)
    return _checked(fields, attributes, index, raw)


def _duplicate(key: str, index: int | None, raw: bytes) -> Rejection:
    # Last-one-wins would let {"account_id":"acme",...,"account_id":"evil"} mean one thing
    # here and another to any reader that keeps the first.
    return Rejection(
        Reason.DUPLICATE_KEY, f"key {excerpt(key)} appears twice in an object", index, raw
    )


def _fast(fields: _CommonFields, index: int | None, source: bytes) -> Event | None:
    """The event of a common-shape item, or None when it needs the strict path.

    ``index`` is the item's place in its batch record; None for a record of one event.
    """
    known = _known_ids
    account_id, app_id = fields.account_id, fields.app_id
    if account_id not in known or app_id not in known:
        if not (_ID.match(account_id) and _ID.match(app_id)):
            return None
        if len(known) > _CACHE_ENTRIES:  # ids repeat; the cache only saves regex runs
            known.clear()
        known.add(account_id)
        known.add(app_id)
    credits = fields.credits
    micro = _known_credits.get(credits, -1)
    if micro < 0:
        whole, dot, fraction = credits.partition(".")
        if not (
            credits.isascii()  # str.isdigit() alone would accept other scripts' digits
            and whole.isdigit()
            and len(whole) <= 10
            and (not dot or (fraction.isdigit() and len(fraction) <= 6))
        ):
            return None
        micro = int(whole) * 1_000_000 + (int(fraction.ljust(6, "0")) if dot else 0)
        if micro > MAX_EVENT_MICRO:
            return None
        if len(_known_credits) > _CACHE_ENTRIES:  # prices repeat; the cache saves parsing
            _known_credits.clear()
        _known_credits[credits] = micro
    occurred_ms = to_epoch_ms(fields.occurred_at)
    if fields.attributes or not 0 <= occurred_ms < _LAST_MS:
        return None
    calls = fields.calls
    return Event(
        fields.event_id,
        account_id,
        app_id,
        occurred_ms,
        micro,
        1 if calls == _NO_CALLS else calls,
        index,
        source,
        index is not None,
    )


def _keys_unrepeated(value: bytes, common: list[_CommonFields]) -> bool:
    """Whether no event of a fast-path batch repeats a key (False: maybe; check each item).

    Fast-path events are flat objects of strings and integers, without attributes, so the
    record's commas are exactly one fewer than its items plus one fewer than each event's keys,
    and a repeated key would add one. Ids and times hold no commas; an event_id may, and then
    the items are checked one by one. One pass of bytes.count, a few percent of the decoding.
    """
    absent = 0
    for fields in common:  # a loop, not sum() over a generator: most records hold one event
        if fields.calls == _NO_CALLS:
            absent += 1
    events = len(common)
    return value.count(b",") == (events - 1) + 5 * events - absent


def _checked(
    fields: _EventFields, attributes: bytes, index: int | None, raw: bytes
) -> Event | Rejection:
    """The checks msgspec's types cannot express: exact credits and flat, small attributes."""
    try:
        micro = _credits_micro(bytes(fields.credits))
    except CreditsError as error:
        return Rejection(Reason.INVALID_EVENT, f"credits: {error}", index, raw)
    if attributes:
        problem = _attributes_problem(attributes)
        if problem is not None:
            reason, detail = problem
            return Rejection(reason, f"attributes: {detail}", index, raw)
    occurred_ms = to_epoch_ms(fields.occurred_at)
    if not 0 <= occurred_ms < _LAST_MS:
        problem_text = "occurred_at: must be from 1970-01-01 to before 9000-01-01"
        return Rejection(Reason.INVALID_EVENT, problem_text, index, raw)
    calls = fields.calls
    return Event(
        fields.event_id,
        fields.account_id,
        fields.app_id,
        occurred_ms,
        micro,
        1 if calls == _NO_CALLS else calls,
        index,
        raw,
        False,
    )


def _attributes_problem(raw: bytes) -> tuple[Reason, str] | None:
    """Flatness, unique keys, and the size of the compact serialization (as pydantic measures)."""
    try:
        attributes = _attributes_decoder.decode(raw)
    except (msgspec.ValidationError, RecursionError):
        return Reason.INVALID_EVENT, "must be a flat object of strings, numbers, booleans or nulls"
    if attributes and raw.count(b",") != len(attributes) - 1:  # as in _keys_unrepeated
        repeated = repeated_key(raw)
        if repeated is not None:
            return Reason.DUPLICATE_KEY, f"key {excerpt(repeated)} appears twice"
    size = len(msgspec.json.encode(attributes))
    if size > MAX_ATTRIBUTES_BYTES:
        return (
            Reason.INVALID_EVENT,
            f"must serialize to at most {MAX_ATTRIBUTES_BYTES} bytes, got {size}",
        )
    return None


def decode_body(value: bytes, max_bytes: int) -> list[Event | Rejection] | Rejection:
    """Validate a record value: one event object or an array of up to 1,000 of them.

    Returns the outcome of every event in order (each judged on its own, whatever the others
    hold), or one record-level rejection when the value as a whole cannot be read. Never
    raises: a worker must not stop on any input, so even an unforeseen decoding failure
    becomes a rejection that keeps the bytes.
    """
    try:
        return _decode_body(value, max_bytes)
    except Exception as error:
        detail = f"unreadable record: {excerpt(repr(error), 200)}"
        return Rejection(Reason.INVALID_EVENT, detail, None, value)


def _decode_body(value: bytes, max_bytes: int) -> list[Event | Rejection] | Rejection:
    if len(value) > max_bytes:
        return Rejection(
            Reason.RECORD_TOO_LARGE, f"record is {len(value)} bytes, limit {max_bytes}", None, value
        )
    head = value.lstrip()[:1]
    if head == b"[":
        try:
            # Fast path: common-shape items decoded in one pass, without splitting the record.
            common = _common_decoder.decode(value)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            common = []  # some item is of another shape or invalid: judge each one below
        if 0 < len(common) <= MAX_BATCH_EVENTS:
            events = [_fast(fields, i, value) for i, fields in enumerate(common)]
            if None not in events and _keys_unrepeated(value, common):
                return cast(list[Event | Rejection], events)
        items = _items(value)
        if items is None:
            return _unreadable(value)
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
        return [_decode_item(item, i) for i, item in enumerate(items)]
    if head == b"{":
        # The same fast path for a record of one event (most producers send those).
        try:
            single: _CommonFields | None = _single_decoder.decode(value)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            single = None
        if single is not None:
            event = _fast(single, None, value)
            # _keys_unrepeated for one event, inline: this runs once per single-event record.
            if event is not None and value.count(b",") == 5 - (single.calls == _NO_CALLS):
                return [event]
        outcome = decode_event(value)
        if isinstance(outcome, Rejection) and outcome.reason in (
            Reason.INVALID_JSON,
            Reason.INVALID_ENCODING,
        ):
            return _unreadable(value)
        return [outcome]
    return _unreadable(value)


def _decode_item(raw: bytes, index: int) -> Event | Rejection:
    if raw[:1] != b"{":
        return Rejection(Reason.INVALID_EVENT, "each batch item must be a JSON object", index, raw)
    return decode_event(raw, index)


def _unreadable(value: bytes) -> Rejection:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Rejection(Reason.INVALID_ENCODING, f"value is not UTF-8: {bad}", None, value)
    try:
        _any_decoder.decode(value)
    except msgspec.DecodeError as bad:
        return Rejection(Reason.INVALID_JSON, clip(str(bad)), None, value)
    except RecursionError:
        return Rejection(Reason.INVALID_JSON, f"value is {_TOO_DEEP}", None, value)
    return Rejection(
        Reason.INVALID_SHAPE, "value must be an event object or an array of events", None, value
    )
