"""Fifteen-minute event-time buckets.

Every real UTC offset is a multiple of 15 minutes, so a bucket grid anchored at the Unix epoch
lines up with local hours, days and months in every time zone. Times are integer milliseconds
since the epoch throughout the core.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

__all__ = (
    "BUCKET_MS",
    "bucket_start",
    "from_epoch_ms",
    "is_aligned",
    "iso_utc",
    "to_epoch_ms",
)

BUCKET_MS = 15 * 60 * 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def bucket_start(epoch_ms: int) -> int:
    """Start (epoch ms) of the bucket holding ``epoch_ms``; buckets are half-open ``[s, s+15m)``."""
    return epoch_ms - epoch_ms % BUCKET_MS


def is_aligned(epoch_ms: int) -> bool:
    """Whether ``epoch_ms`` falls exactly on a bucket boundary."""
    return epoch_ms % BUCKET_MS == 0


def to_epoch_ms(moment: datetime) -> int:
    """Exact epoch milliseconds of an aware datetime (sub-millisecond digits are floored)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: an offset or time zone is required")
    # The fields of the difference, not ``// timedelta(milliseconds=1)``: that division turns
    # both sides into microsecond integers first, and the worker converts every event's time
    # (336 -> 152 ns here, 3% of a worker's main thread on current-time events).
    since = moment - _EPOCH
    return since.days * 86_400_000 + since.seconds * 1000 + since.microseconds // 1000


def from_epoch_ms(epoch_ms: int) -> datetime:
    """Aware UTC datetime for epoch milliseconds."""
    return _EPOCH + timedelta(milliseconds=epoch_ms)


@lru_cache(maxsize=65_536)
def iso_utc(epoch_ms: int) -> str:
    """RFC 3339 UTC rendering with a ``Z`` suffix, milliseconds only when non-zero."""
    try:
        moment = from_epoch_ms(epoch_ms)
    except OverflowError:  # beyond datetime's years; only ever in a message about bad input
        return f"{epoch_ms} ms since the epoch"
    if epoch_ms % 1000:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
