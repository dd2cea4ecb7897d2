"""The access decision: whether an account may keep calling, given its use of the allotment.

A contract either bills usage past the allotment pay-as-you-go (``hard_limit`` false: access
never stops) or stops at the allotment (``hard_limit`` true: access while ``used < allotment``).
Everything is integer micro-credits, so the decision is exact at the boundary: using exactly
the allotment ends access on a hard-limit contract.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("Access", "decide")


@dataclass(frozen=True, slots=True)
class Access:
    """An account's standing in a billing period, in micro-credits."""

    has_access: bool
    used_micro: int
    allotment_micro: int
    remaining_micro: int
    overage_micro: int
    hard_limit: bool


def decide(used_micro: int, allotment_micro: int, hard_limit: bool) -> Access:
    """The access decision and the numbers it rests on."""
    return Access(
        has_access=not hard_limit or used_micro < allotment_micro,
        used_micro=used_micro,
        allotment_micro=allotment_micro,
        remaining_micro=max(0, allotment_micro - used_micro),
        overage_micro=max(0, used_micro - allotment_micro),
        hard_limit=hard_limit,
    )
