"""Contract terms, billing periods and the billing arithmetic: used, remaining, overage.

Periods are local: a monthly period starts on the anchor's day of month (clamped to short
months: an anchor on the 31st starts February's period on the 28th or 29th) at the first
instant of that local date in the contract's zone. Money is Decimal with enough precision that
no intermediate result is ever rounded; only the final amount is rounded, half-up, to the
currency's minor unit.
"""

from __future__ import annotations

import calendar
import decimal
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from core.localtime import first_instant, local
from core.money import MICRO, format_micro, round_half_up

__all__ = (
    "Explicit",
    "Monthly",
    "Period",
    "Terms",
    "bill",
    "crossed",
    "period_at",
    "previous_period",
)

_PRECISION = 120


@dataclass(frozen=True, slots=True)
class Monthly:
    """Monthly periods starting on ``anchor``'s day of month, from ``anchor`` on."""

    anchor: date


@dataclass(frozen=True, slots=True)
class Explicit:
    """A single period ``[start, end)`` of local dates."""

    start: date
    end: date


@dataclass(frozen=True, slots=True)
class Period:
    """A billing period: local dates ``[start_date, end_date)`` and the instants they span."""

    start_date: date
    end_date: date
    start_ms: int
    end_ms: int

    def contains(self, instant_ms: int) -> bool:
        """Whether the instant falls in the period."""
        return self.start_ms <= instant_ms < self.end_ms


@dataclass(frozen=True, slots=True)
class Terms:
    """What the core needs of an account's contract."""

    account_id: str
    plan: str
    allotment_micro: int
    period: Monthly | Explicit
    tz: ZoneInfo
    rate: Decimal
    currency: str
    minor_digits: int
    thresholds: tuple[int, ...]
    version: int


def _clamped(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _shift(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def _period(start: date, end: date, tz: ZoneInfo) -> Period:
    return Period(start, end, first_instant(start, tz), first_instant(end, tz))


def period_at(terms: Terms, instant_ms: int) -> Period | None:
    """The period containing ``instant_ms``; None before the contract or after an explicit one."""
    spec = terms.period
    if isinstance(spec, Explicit):
        period = _period(spec.start, spec.end, terms.tz)
        return period if period.contains(instant_ms) else None
    today = local(instant_ms, terms.tz).date()
    for back in (0, 1):
        year, month = _shift(today.year, today.month, -back)
        start = _clamped(year, month, spec.anchor.day)
        if start < spec.anchor:
            return None
        year_next, month_next = _shift(year, month, 1)
        period = _period(start, _clamped(year_next, month_next, spec.anchor.day), terms.tz)
        if period.contains(instant_ms):
            return period
    return None


def previous_period(terms: Terms, period: Period) -> Period | None:
    """The period just before ``period`` (None for the first one)."""
    return period_at(terms, period.start_ms - 1)


def crossed(used_micro: int, allotment_micro: int, threshold_percent: int) -> bool:
    """Whether usage reached ``threshold_percent`` of the allotment (exact integer test).

    With a zero allotment every threshold is reached by the first credit used.
    """
    return used_micro > 0 and used_micro * 100 >= threshold_percent * allotment_micro


def bill(terms: Terms, used_micro: int) -> dict[str, Any]:
    """Used, remaining, overage credits and amount, and percent used, as exact decimal strings."""
    remaining = max(0, terms.allotment_micro - used_micro)
    overage = max(0, used_micro - terms.allotment_micro)
    with decimal.localcontext(prec=_PRECISION):
        amount = round_half_up(Decimal(overage) * terms.rate / MICRO, terms.minor_digits)
        percent = (
            None
            if terms.allotment_micro == 0
            else round_half_up(Decimal(used_micro) * 100 / terms.allotment_micro, 2)
        )
    return {
        "allotment": format_micro(terms.allotment_micro),
        "used": format_micro(used_micro),
        "remaining": format_micro(remaining),
        "overage_credits": format_micro(overage),
        "overage_amount": f"{amount:f}",
        "currency": terms.currency,
        "percent_used": None if percent is None else f"{percent:f}",
    }
