"""Entitlement values: OpenMeter's ``hasAccess`` gate over creditflow's contracts.

creditflow has one metered feature, ``credits``: a customer or subject is an account, its
contract's allotment is the period's grant. ``usage`` is used this period, ``balance`` the
remaining allotment, ``overage`` the credits past it, ``totalAvailableGrantAmount`` the
allotment, and ``hasAccess`` the access check's decision (:mod:`core.access`): always true on a
pay-as-you-go contract (a soft limit), ``used < allotment`` on a ``hard_limit`` one. The
numbers are exact JSON numbers, the same decision as ``GET /v1/accounts/{a}/access``.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Response

from api.auth import Authenticated, Principal
from api.deps import check_account
from api.errors import ApiError
from api.openmeter.problems import Problem, ProblemRoute
from api.services import Services, services
from api.standing import Standing, standing_of
from core.localtime import parse_bound, parse_tz, quoted
from core.money import format_micro

__all__ = ("FEATURE", "router", "value_json")

router = APIRouter(route_class=ProblemRoute, tags=["OpenMeter"])

FEATURE = "credits"


def value_json(standing: Standing) -> dict[str, Any]:
    """OpenMeter's ``EntitlementValue`` of a standing (numbers written from the decimal)."""
    access = standing.access

    def number(micro: int) -> orjson.Fragment:
        return orjson.Fragment(format_micro(micro).encode())

    return {
        "hasAccess": access.has_access,
        "balance": number(access.remaining_micro),
        "usage": number(access.used_micro),
        "overage": number(access.overage_micro),
        "totalAvailableGrantAmount": number(access.allotment_micro),
    }


def _instant(time: str | None) -> int | None:
    if time is None:
        return None
    try:
        return parse_bound(time, parse_tz("UTC"))
    except ValueError as error:
        raise Problem(400, "invalid_query", f"time: {error}") from None


async def _value(
    svc: Services, principal: Principal, account: str, feature: str, time: str | None
) -> Response:
    check_account(account, principal)
    if feature != FEATURE:
        raise Problem(
            404,
            "feature_not_found",
            f"no feature {quoted(feature)}; creditflow meters one feature, {FEATURE!r}",
        )
    standing = await standing_of(svc, account, _instant(time))
    return Response(orjson.dumps(value_json(standing)), media_type="application/json")


TimeParam = Annotated[str | None, Query(description="RFC 3339; default now")]


@router.get(
    "/api/v2/customers/{customer}/entitlements/{feature}/value",
    summary="Entitlement value of a customer (an account)",
    name="customer_value_v2",
)
@router.get(
    "/api/v1/customers/{customer}/entitlements/{feature}/value",
    summary="Entitlement value of a customer (v1)",
    description="The same value as the v2 route.",
)
async def customer_value(
    customer: str,
    feature: str,
    principal: Authenticated,
    svc: Annotated[Services, Depends(services)],
    time: TimeParam = None,
) -> Response:
    """``hasAccess``, ``balance``, ``usage``, ``overage``, ``totalAvailableGrantAmount``."""
    return await _value(svc, principal, customer, feature, time)


@router.get(
    "/api/v1/subjects/{subject}/entitlements/{feature}/value",
    summary="Entitlement value of a subject (deprecated in OpenMeter; used by SDK 1.0.0b188)",
)
async def subject_value(
    subject: str,
    feature: str,
    principal: Authenticated,
    svc: Annotated[Services, Depends(services)],
    time: TimeParam = None,
) -> Response:
    """The same value, by subject."""
    return await _value(svc, principal, subject, feature, time)


@router.get("/api/v1/customers/{customer}/access", summary="Every entitlement value of a customer")
async def customer_access(
    customer: str, principal: Authenticated, svc: Annotated[Services, Depends(services)]
) -> Response:
    """``{"entitlements": {"credits": value}}``, empty for an account without a contract."""
    check_account(customer, principal)
    try:
        entitlements = {FEATURE: value_json(await standing_of(svc, customer))}
    except ApiError as error:
        if error.code not in ("no_contract", "no_period"):
            raise
        entitlements = {}
    return Response(orjson.dumps({"entitlements": entitlements}), media_type="application/json")
