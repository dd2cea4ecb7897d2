"""Meters and meter queries: ``/api/v1/meters``, ``/{m}``, ``/{m}/subjects``, ``/{m}/query``.

A query is answered from creditflow's own usage answers, one per account
(:func:`api.openmeter.view.usage_of`), regrouped by :mod:`api.openmeter.rows`. JSON by
default; CSV when ``text/csv`` is the first type the client accepts (as OpenMeter decides).
Each answer carries ``X-Creditflow-As-Of``: the event time up to which it is complete.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from api.auth import Authenticated, Principal
from api.bodies import parse_exact_json, read_body
from api.deps import accounts_with_usage, check_account, readable_accounts
from api.openmeter.meters import (
    METERS,
    Meter,
    MeterQuery,
    QueryError,
    find_meter,
    meter_json,
    parse_body,
    parse_query_string,
)
from api.openmeter.problems import Problem, ProblemRoute
from api.openmeter.rows import answer_csv, answer_json, resolve_range, rows_of, usage_params
from api.openmeter.view import extent_of, usage_of
from api.responses import JSON
from api.services import Services, services
from core.localtime import boundaries, quoted

__all__ = ("answer_query", "meter_or_404", "router", "wants_csv")

router = APIRouter(route_class=ProblemRoute, tags=["OpenMeter"])

_MAX_QUERY_BODY = 64 * 1024


def meter_or_404(id_or_slug: str) -> Meter:
    """The meter, or a 404 naming the two that exist."""
    meter = find_meter(id_or_slug)
    if meter is None:
        raise Problem(
            404,
            "meter_not_found",
            f"no meter {quoted(id_or_slug)}; the meters are credits and calls",
        )
    return meter


def wants_csv(request: Request) -> bool:
    """Whether the client's first accepted type is ``text/csv``."""
    first = request.headers.get("accept", "").split(",")[0]
    return first.partition(";")[0].strip().lower() == "text/csv"


async def _accounts(svc: Services, principal: Principal, query: MeterQuery) -> list[str]:
    if query.subjects:
        for subject in query.subjects:
            check_account(subject, principal)
        accounts = list(query.subjects)
    else:
        readable = readable_accounts(principal)
        accounts = await accounts_with_usage(svc) if readable is None else readable
    limit = svc.settings.openmeter_max_subjects
    if len(accounts) > limit:
        raise Problem(
            400,
            "too_many_subjects",
            f"the query covers {len(accounts)} accounts, at most {limit}; name subjects",
        )
    return accounts


async def answer_query(
    request: Request, svc: Services, principal: Principal, query: MeterQuery
) -> Response:
    """The meter query's answer (JSON or CSV), over the accounts it covers."""
    accounts = await _accounts(svc, principal, query)
    extent = None
    if query.start_ms is None or query.end_ms is None:
        extents = [e for e in await asyncio.gather(*(extent_of(svc, a) for a in accounts)) if e]
        extent = (min(e[0] for e in extents), max(e[1] for e in extents)) if extents else None
    span = resolve_range(query, extent)
    answers = {}
    if span is not None:
        windows = len(boundaries(span[0], span[1], query.tz, query.window)) - 1
        if windows * len(accounts) > svc.settings.openmeter_max_cells:
            raise Problem(
                400,
                "query_too_large",
                f"{windows} windows x {len(accounts)} accounts is over "
                f"{svc.settings.openmeter_max_cells}; narrow the range, widen the window or "
                "name fewer subjects",
            )
        params = usage_params(query, *span)
        found = await asyncio.gather(*(usage_of(svc, a, params) for a in accounts))
        answers = dict(zip(accounts, found, strict=True))
    rows = rows_of(query, *span, answers) if span is not None else []
    stamps = [answer["as_of"] for answer in answers.values()]
    headers = {"X-Creditflow-As-Of": min(stamps)} if stamps and None not in stamps else {}
    if wants_csv(request):
        headers["Content-Disposition"] = f'attachment; filename="{query.meter.slug}.csv"'
        return Response(answer_csv(query, rows), headers=headers, media_type="text/csv")
    body = answer_json(query, rows)
    return Response(body, headers=headers, media_type="application/json")


@router.get("/api/v1/meters", response_class=JSON, summary="The two meters: credits and calls")
async def list_meters(_: Authenticated) -> JSON:
    """A plain array (pagination parameters are accepted; two meters fit on any page)."""
    return JSON([meter_json(meter) for meter in METERS.values()])


@router.get("/api/v1/meters/{meter}", response_class=JSON, summary="One meter by slug or id")
async def get_meter(meter: str, _: Authenticated) -> JSON:
    """The meter (404 for any other slug)."""
    return JSON(meter_json(meter_or_404(meter)))


@router.get(
    "/api/v1/meters/{meter}/subjects",
    response_class=JSON,
    summary="Accounts with usage (the ones this token may read)",
)
async def list_subjects(
    meter: str, principal: Authenticated, svc: Annotated[Services, Depends(services)]
) -> JSON:
    """Every account with usage; ``from``/``to`` are accepted and not applied."""
    meter_or_404(meter)
    readable = readable_accounts(principal)
    found = await accounts_with_usage(svc)
    if readable is None:
        return JSON(found)
    allowed = set(readable)
    return JSON([account for account in found if account in allowed])


@router.get(
    "/api/v1/meters/{meter}/query", summary="Query a meter (JSON, or CSV with Accept: text/csv)"
)
async def query_meter(
    request: Request,
    meter: str,
    principal: Authenticated,
    svc: Annotated[Services, Depends(services)],
) -> Response:
    """Usage per window and group over ``[from, to)``; docs/openmeter.md lists what answers 400."""
    try:
        query = parse_query_string(meter_or_404(meter), request.query_params.multi_items())
    except QueryError as error:
        raise Problem(400, "invalid_query", str(error)) from None
    return await answer_query(request, svc, principal, query)


@router.post("/api/v1/meters/{meter}/query", summary="Query a meter with a JSON body")
async def query_meter_post(
    request: Request,
    meter: str,
    principal: Authenticated,
    svc: Annotated[Services, Depends(services)],
) -> Response:
    """The same query, its parameters in the body (OpenMeter's ``MeterQueryRequest``)."""
    raw = await read_body(request, _MAX_QUERY_BODY)
    try:
        query = parse_body(meter_or_404(meter), parse_exact_json(raw or b"{}"))
    except (QueryError, ValueError) as error:
        raise Problem(400, "invalid_query", str(error)) from None
    return await answer_query(request, svc, principal, query)
