"""Freshness of an answer: ``as_of`` and ``lag`` from per-partition progress lines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.freshness import Freshness, Progress, freshness
from tests.core.support import FAST


def test_encode_decode() -> None:
    line = Progress(applied=41, end=42, watermark_ms=1_000, checked_ms=2_000)
    assert line.encode() == "41,42,1000,2000"
    assert Progress.decode("41,42,1000,2000") == line
    assert Progress.decode("-1,0,0,5").applied == -1


@pytest.mark.parametrize("line", ["", "1,2,3", "1,2,3,4,5", "a,b,c,d", "1.5,2,3,4"])
def test_decode_rejects_malformed_lines(line: str) -> None:
    with pytest.raises(ValueError):
        Progress.decode(line)


@FAST
@given(
    st.integers(min_value=-1, max_value=2**62),
    st.integers(min_value=0, max_value=2**62),
    st.integers(min_value=0, max_value=2**45),
    st.integers(min_value=0, max_value=2**45),
)
def test_encode_round_trips(applied: int, end: int, watermark: int, checked: int) -> None:
    line = Progress(applied, end, watermark, checked)
    assert Progress.decode(line.encode()) == line


@pytest.mark.parametrize(
    ("applied", "end", "lag"),
    [
        (9, 10, 0),  # the last record (offset end-1) is applied
        (5, 10, 4),
        (-1, 0, 0),  # empty partition, nothing applied
        (-1, 3, 3),  # nothing applied yet
        (12, 10, 0),  # end read before the newest records were applied: never negative
    ],
)
def test_lag_counts_records_appended_but_not_applied(applied: int, end: int, lag: int) -> None:
    assert Progress(applied, end, 0, 0).lag == lag


def test_complete_as_of() -> None:
    # Caught up when the end was read: complete up to that read.
    assert Progress(9, 10, watermark_ms=1_000, checked_ms=5_000).complete_as_of == 5_000
    # Caught up, and the newest applied record is even newer than the read.
    assert Progress(9, 10, watermark_ms=6_000, checked_ms=5_000).complete_as_of == 6_000
    # Behind: complete only up to the newest applied record's append time.
    assert Progress(5, 10, watermark_ms=1_000, checked_ms=5_000).complete_as_of == 1_000


def test_freshness_is_the_least_complete_partition_and_the_total_lag() -> None:
    progress = {
        0: Progress(9, 10, watermark_ms=800, checked_ms=1_000),  # complete to 1000
        1: Progress(5, 10, watermark_ms=700, checked_ms=1_000),  # 4 behind, complete to 700
        2: Progress(2, 3, watermark_ms=100, checked_ms=900),  # complete to 900
    }
    assert freshness(progress, 3) == Freshness(700, 4)


def test_all_caught_up() -> None:
    progress = {p: Progress(9, 10, 500, 1_000 + p) for p in range(4)}
    assert freshness(progress, 4) == Freshness(1_000, 0)


def test_a_partition_that_vouches_for_nothing_yet_makes_as_of_unknown() -> None:
    # Partition 1's first records are applied but their days still wait in the outbox: its
    # line claims the offset before them and the watermark before them (none).
    progress = {0: Progress(9, 10, 800, 1_000), 1: Progress(-1, 40, 0, 1_000)}
    assert freshness(progress, 2) == Freshness(None, 40)


def test_an_unreported_partition_makes_as_of_unknown() -> None:
    progress = {0: Progress(9, 10, 800, 1_000), 2: Progress(1, 5, 100, 1_000)}
    result = freshness(progress, 3)
    assert result.as_of_ms is None
    assert result.lag == 3  # what is known is still reported
    assert freshness({}, 1) == Freshness(None, 0)


@FAST
@given(
    st.dictionaries(
        st.integers(min_value=0, max_value=5),
        st.tuples(
            st.integers(min_value=-1, max_value=50),
            st.integers(min_value=0, max_value=50),
            st.integers(min_value=0, max_value=10**6),
            st.integers(min_value=0, max_value=10**6),
        ).map(lambda t: Progress(*t)),
        max_size=6,
    ),
    st.integers(min_value=1, max_value=6),
)
def test_freshness_rules(progress: dict[int, Progress], partitions: int) -> None:
    result = freshness(progress, partitions)
    assert result.lag == sum(max(0, p.end - 1 - p.applied) for p in progress.values())
    if any(n not in progress for n in range(partitions)):
        assert result.as_of_ms is None
    elif min(p.complete_as_of for p in progress.values()) == 0:
        assert result.as_of_ms is None  # nothing vouched for yet
    else:
        assert result.as_of_ms is not None
        # Never claims more than any partition can vouch for.
        for line in progress.values():
            bound = max(line.checked_ms, line.watermark_ms) if line.lag == 0 else line.watermark_ms
            assert result.as_of_ms <= bound
        assert result.as_of_ms in {
            max(p.checked_ms, p.watermark_ms) if p.lag == 0 else p.watermark_ms
            for p in progress.values()
        }
