"""The access decision: soft limits never stop access, hard limits stop at the allotment."""

from __future__ import annotations

import pytest

from core.access import decide


@pytest.mark.parametrize(
    ("used", "hard", "expected"),
    [
        (0, True, True),
        (99_999_999, True, True),
        (100_000_000, True, False),  # exactly the allotment: used up
        (100_000_001, True, False),
        (0, False, True),
        (100_000_000, False, True),
        (500_000_000, False, True),  # pay-as-you-go: access past the allotment
    ],
)
def test_has_access(used: int, hard: bool, expected: bool) -> None:
    assert decide(used, 100_000_000, hard).has_access is expected


def test_numbers_never_negative() -> None:
    over = decide(130_000_000, 100_000_000, True)
    assert (over.remaining_micro, over.overage_micro) == (0, 30_000_000)
    under = decide(40_000_000, 100_000_000, False)
    assert (under.remaining_micro, under.overage_micro) == (60_000_000, 0)


def test_zero_allotment_on_a_hard_limit_denies_from_the_start() -> None:
    assert decide(0, 0, True).has_access is False
    assert decide(0, 0, False).has_access is True
