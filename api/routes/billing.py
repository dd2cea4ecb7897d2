"""Billing of a period (used, remaining, overage) and the account's alerts with deliveries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from redis.exceptions import RedisError

from api.auth import Authenticated, Principal
from api.deps import check_account, freshness_fields, read_usage, used_between, view_unavailable
from api.errors import ApiError
from api.responses import JSON
from api.services import Services, services
from config.clock import now_ms
from core.billing import Period, bill, period_at, previous_period
from core.localtime import iso_local, parse_bound

__all__ = ("router", "visible_alerts")

router = APIRouter()

# What a delivery status shows a non-admin token: whether and when the alert was delivered.
# The endpoint URL (which may carry a secret) and connection errors (a port-scan oracle) are
# for the admin, who configures the endpoints.
_ADMIN_ONLY_DELIVERY_FIELDS = ("url", "last_error")


def visible_alerts(alerts: list[dict[str, Any]], principal: Principal) -> list[dict[str, Any]]:
    """The alerts with their delivery statuses as ``principal`` may see them."""
    if principal.is_admin:
        return alerts
    shown = []
    for alert in alerts:
        deliveries = [
            {
                **{k: v for k, v in delivery.items() if k not in _ADMIN_ONLY_DELIVERY_FIELDS},
                "history": [
                    {k: v for k, v in attempt.items() if k != "error"}
                    for attempt in delivery.get("history") or []
                ],
            }
            for delivery in alert.get("deliveries") or []
        ]
        shown.append({**alert, "deliveries": deliveries})
    return shown


def _period_body(period: Period, tz_name: str, tz: Any) -> dict[str, Any]:
    return {
        "start": period.start_date.isoformat(),
        "end": period.end_date.isoformat(),
        "start_at": iso_local(period.start_ms, tz),
        "end_at": iso_local(period.end_ms, tz),
        "tz": tz_name,
    }


@router.get(
    "/v1/accounts/{account}/billing",
    response_class=JSON,
    summary="Plan, period, allotment, used, remaining and pay-as-you-go overage",
)
async def get_billing(
    account: str,
    principal: Authenticated,
    svc: Annotated[Services, Depends(services)],
    period: Annotated[str, Query(description="current | previous")] = "current",
    at: Annotated[
        str | None, Query(description="a date or instant: the period containing it")
    ] = None,
) -> JSON:
    """The account's billing for the current period (or the previous one, or one at a date)."""
    check_account(account, principal)
    accounts = await svc.accounts()
    terms = accounts.terms_for(account)
    contract = accounts.contracts.get(account)
    if terms is None or contract is None:
        raise ApiError(404, "no_contract", f"account {account!r} has no contract")
    if period not in ("current", "previous"):
        raise ApiError(400, "invalid_query", "period must be current or previous")
    try:
        instant = parse_bound(at, terms.tz) if at else now_ms()
    except ValueError as error:
        raise ApiError(400, "invalid_query", f"at: {error}") from None
    chosen = period_at(terms, instant)
    if chosen is not None and period == "previous":
        chosen = previous_period(terms, chosen)
    if chosen is None:
        raise ApiError(404, "no_period", f"no billing period of {account!r} covers that date")
    view = await read_usage(svc, account, [chosen.start_ms, chosen.end_ms])
    used = used_between(view, chosen.start_ms, chosen.end_ms)
    try:
        alerts = [
            alert
            for alert in visible_alerts(await svc.reader.alerts(account), principal)
            if alert["period"]["start"] == chosen.start_date.isoformat()
        ]
    except RedisError:
        raise view_unavailable() from None
    plan = accounts.plans.get(terms.plan)
    body: dict[str, Any] = {
        "account_id": account,
        "plan": {
            "name": terms.plan,
            "allotment": bill(terms, 0)["allotment"],
            "payg_rate": f"{terms.rate:f}",
            "currency": terms.currency,
            "upgrade_url": plan.upgrade_url if plan else None,
            "hard_limit": contract.hard_limit,
            "contract_version": terms.version,
        },
        "period": _period_body(chosen, contract.time_zone, terms.tz),
        **bill(terms, used),
        "alert_thresholds": list(terms.thresholds),
        "alerts": alerts,
    }
    body.update(freshness_fields(view.freshness))
    return JSON(body)


@router.get(
    "/v1/accounts/{account}/alerts",
    response_class=JSON,
    summary="Alerts fired for the account, with webhook delivery status",
)
async def get_alerts(
    account: str, principal: Authenticated, svc: Annotated[Services, Depends(services)]
) -> JSON:
    """Every fired alert (newest first) and, per endpoint, its delivery log.

    The endpoint URL and connection errors are shown to the admin token only.
    """
    check_account(account, principal)
    try:
        alerts = await svc.reader.alerts(account)
    except RedisError:
        raise view_unavailable() from None
    return JSON({"account_id": account, "alerts": visible_alerts(alerts, principal)})
