"""The dead-letter record published to ``usage.calls.dlq.v1``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.events import Reason

__all__ = ("DlqRecord", "DlqSource")


class DlqSource(BaseModel):
    """Where the rejected bytes were read from."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    offset: int
    timestamp: str = Field(description="Broker append time of the source record (RFC 3339).")
    key: str | None = Field(
        default=None, description="The record's key, if UTF-8 (its first 256 bytes at most)."
    )
    key_truncated: bool = Field(default=False, description="Only the key's first 256 bytes kept.")
    key_bytes: int | None = Field(default=None, description="Size of the key when truncated.")


class DlqRecord(BaseModel):
    """One rejected event (``index`` set) or one unreadable record (``index`` null)."""

    model_config = ConfigDict(frozen=True)

    dlq_id: str = Field(description="topic:partition:offset[:index]; stable across replays.")
    reason: Reason
    detail: str = Field(description="What is wrong, for people (at most 1,000 characters).")
    source: DlqSource
    index: int | None = None
    account_id: str | None = Field(default=None, description="When the bytes name an account.")
    original: str | None = Field(default=None, description="The rejected bytes, if UTF-8.")
    original_base64: str | None = Field(default=None, description="The bytes, if not UTF-8.")
    original_truncated: bool = Field(
        default=False,
        description="Only a prefix is kept (at most 256 KiB, less if its escaping would not fit "
        "the DLQ record limit, none in a minimal dead letter); the source has them all.",
    )
    original_bytes: int | None = Field(default=None, description="Size when truncated.")
    rerouted_from: str | None = Field(
        default=None,
        description="topic:partition:offset of the record this event was re-keyed from.",
    )
