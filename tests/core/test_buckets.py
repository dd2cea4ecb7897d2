"""Fifteen-minute buckets and epoch-millisecond conversions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.buckets import BUCKET_MS, bucket_start, from_epoch_ms, is_aligned, iso_utc, to_epoch_ms
from tests.core.support import FAST, T0


def test_bucket_is_fifteen_minutes() -> None:
    assert BUCKET_MS == 15 * 60 * 1000


@pytest.mark.parametrize(
    ("instant", "start"),
    [
        (0, 0),
        (1, 0),
        (BUCKET_MS - 1, 0),
        (BUCKET_MS, BUCKET_MS),
        (BUCKET_MS + 1, BUCKET_MS),
        (-1, -BUCKET_MS),  # floors, also before the epoch
        (-BUCKET_MS, -BUCKET_MS),
        (T0 + 4 * 3_600_000 + 12 * 60_000 + 33_120, T0 + 4 * 3_600_000),  # 04:12:33.120 -> 04:00
        (T0 + 4 * 3_600_000 + 15 * 60_000, T0 + 4 * 3_600_000 + 15 * 60_000),
    ],
)
def test_bucket_start(instant: int, start: int) -> None:
    assert bucket_start(instant) == start


def test_is_aligned() -> None:
    assert is_aligned(0)
    assert is_aligned(T0)
    assert is_aligned(T0 + 45 * 60_000)
    assert not is_aligned(T0 + 1)
    assert not is_aligned(T0 + 10 * 60_000)
    assert not is_aligned(T0 + 30 * 60_000 + 1000)


@FAST
@given(st.integers(min_value=-(10**14), max_value=10**14))
def test_bucket_start_contains_the_instant(instant: int) -> None:
    start = bucket_start(instant)
    assert start <= instant < start + BUCKET_MS
    assert is_aligned(start)
    assert bucket_start(start) == start


def test_to_epoch_ms() -> None:
    assert to_epoch_ms(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    moment = datetime(2026, 11, 27, 4, 12, 33, 120_000, tzinfo=timezone(timedelta(hours=9)))
    assert to_epoch_ms(moment) == T0 - 5 * 3_600_000 + 12 * 60_000 + 33_120  # 2026-11-26T19:12Z
    # Sub-millisecond digits are floored, also before the epoch.
    assert to_epoch_ms(datetime(1970, 1, 1, 0, 0, 0, 999, tzinfo=UTC)) == 0
    assert to_epoch_ms(datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC)) == -1


def test_to_epoch_ms_rejects_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_epoch_ms(datetime(2026, 11, 27))


@pytest.mark.parametrize(
    ("instant", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_500, "1970-01-01T00:00:01.500Z"),
        (1, "1970-01-01T00:00:00.001Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (T0, "2026-11-27T00:00:00Z"),
    ],
)
def test_iso_utc(instant: int, text: str) -> None:
    assert iso_utc(instant) == text


@FAST
@given(st.integers(min_value=-(10**13), max_value=10**13))
def test_epoch_conversions_round_trip(instant: int) -> None:
    moment = from_epoch_ms(instant)
    assert moment.tzinfo is UTC
    assert to_epoch_ms(moment) == instant
    assert to_epoch_ms(datetime.fromisoformat(iso_utc(instant))) == instant
