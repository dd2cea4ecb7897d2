"""The call event as a pydantic model: the documented contract and its JSON Schema.

The worker's hot path validates with :mod:`core.events` (msgspec, exact decimals from JSON
number text); this model states the same rules for the API docs, the exported schema and client
code, and a test keeps both in agreement.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    field_validator,
)

from core.events import ID_PATTERN, MAX_ATTRIBUTES_BYTES, MAX_BATCH_EVENTS, MAX_CALLS
from core.money import CreditsError, micro_from_decimal, micro_from_text

__all__ = ("BatchRecord", "CallEvent", "parse_call_event")

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Scalar = str | int | float | bool | None


class CallEvent(BaseModel):
    """One app call, as services publish it to ``usage.calls.v1``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="Unique per account; a retry resends the same id."
    )
    account_id: Identifier
    app_id: Identifier
    occurred_at: AwareDatetime = Field(description="RFC 3339 with an offset; event time.")
    credits: Decimal | str = Field(
        description="Decimal string (preferred) or JSON number; >= 0, <= 1e9, "
        "at most 6 fractional digits.",
        json_schema_extra={"pattern": r"^[0-9]+(\.[0-9]+)?$"},
    )
    calls: Annotated[int, Field(ge=0, le=MAX_CALLS, strict=True)] = 1
    attributes: dict[str, Scalar] | None = Field(
        default=None, description=f"Flat object, at most {MAX_ATTRIBUTES_BYTES} bytes serialized."
    )

    @field_validator("credits", mode="before")
    @classmethod
    def _exact_credits(cls, value: Any) -> Decimal:
        if isinstance(value, float):
            raise ValueError("credits must not pass through a binary float; send a string")
        try:
            if isinstance(value, str):
                micro = micro_from_text(value)
            elif isinstance(value, Decimal | int):
                micro = micro_from_decimal(value)
            else:
                raise ValueError("credits must be a decimal string or a number")
        except CreditsError as error:
            raise ValueError(str(error)) from None
        return Decimal(micro).scaleb(-6).normalize()

    @field_validator("attributes")
    @classmethod
    def _small_attributes(cls, value: dict[str, Scalar] | None) -> dict[str, Scalar] | None:
        if value is not None and any(
            isinstance(item, float) and not math.isfinite(item) for item in value.values()
        ):
            raise ValueError("attributes must not hold numbers beyond a double's range")
        if value is not None and len(msgspec.json.encode(value)) > MAX_ATTRIBUTES_BYTES:
            raise ValueError(f"attributes must serialize to at most {MAX_ATTRIBUTES_BYTES} bytes")
        return value

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> datetime:
        if isinstance(value, datetime):
            return value
        if not isinstance(value, str):
            raise ValueError("occurred_at must be an RFC 3339 string")
        try:
            parsed: datetime = _rfc3339_decoder.decode(msgspec.json.encode(value))
        except msgspec.ValidationError:
            raise ValueError("occurred_at must be RFC 3339 with an offset (Z or +09:00)") from None
        if not _FIRST <= parsed < _LAST:
            raise ValueError("occurred_at must be from 1970-01-01 to before 9000-01-01")
        return parsed


class BatchRecord(RootModel[list[CallEvent]]):
    """A batch record: up to 1,000 events of one account in one Kafka record."""

    root: Annotated[list[CallEvent], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]


_lossless = msgspec.json.Decoder(float_hook=Decimal)
_rfc3339_decoder = msgspec.json.Decoder(Annotated[datetime, msgspec.Meta(tz=True)])
_FIRST = datetime(1970, 1, 1, tzinfo=UTC)
_LAST = datetime(9000, 1, 1, tzinfo=UTC)


def parse_call_event(raw: bytes) -> CallEvent:
    """Parse JSON bytes into a :class:`CallEvent` without ever reading a number as a float."""
    return CallEvent.model_validate(_lossless.decode(raw))
