"""An account's standing in its billing period: the access decision and how fresh it is.

The access check (:mod:`api.routes.access`) and the OpenMeter entitlements
(:mod:`api.openmeter.entitlements`) both answer from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.deps import (
    freshness_fields,
    read_usage,
    used_between,
)
from api.errors import ApiError
from api.services import Services
from config.clock import now_ms
from core.access import Access, decide
from core.billing import Period, Terms, period_at
from core.buckets import BUCKET_MS

__all__ = ("Standing", "standing_of")


@dataclass(frozen=True, slots=True)
class Standing:
    """An account's access decision in a billing period, and how fresh it is."""

    access: Access
    period: Period
    as_of: str | None


async def standing_of(svc: Services, account: str, at_ms: int | None = None) -> Standing:
    """The account's standing in the period holding ``at_ms`` (default now).

    "Used" is the billing page's own computation (:func:`api.deps.used_between`);
    with ``at_ms`` in the past it counts up to the 15-minute boundary at or before it.
    404 without a contract, or when no period of the contract holds the instant.
    """
    accounts = await svc.accounts()
    terms = accounts.terms_for(account)
    contract = accounts.contracts.get(account)
    if terms is None or contract is None:
        raise ApiError(404, "no_contract", f"account {account!r} has no contract")
    now = now_ms()
    instant = now if at_ms is None else at_ms
    period = _period(terms, instant)
    if period is None:
        raise ApiError(404, "no_period", f"no billing period of {account!r} covers that instant")
    end = period.end_ms if instant >= now else min(period.end_ms, instant - instant % BUCKET_MS)
    view = await read_usage(svc, account, (period.start_ms, end))
    used = used_between(view, period.start_ms, end)
    access = decide(used, terms.allotment_micro, contract.hard_limit)
    return Standing(access, period, freshness_fields(view.freshness)["as_of"])


_periods: dict[str, tuple[Terms, Period]] = {}


def _period(terms: Terms, instant_ms: int) -> Period | None:
    """The period holding the instant; each account's current one is remembered (hot path).

    Remembered with the very terms object it was computed from: a contract change makes new
    terms, so a stale period is never used.
    """
    found = _periods.get(terms.account_id)
    if found is not None and found[0] is terms and found[1].contains(instant_ms):
        return found[1]
    period = period_at(terms, instant_ms)
    if period is not None and period.contains(now_ms()):
        if len(_periods) >= 100_000:
            _periods.clear()
        _periods[terms.account_id] = (terms, period)
    return period
