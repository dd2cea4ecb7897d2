"""``GET /v1/accounts/{account}/usage``: totals, per-app breakdown and local-calendar series."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from redis.exceptions import RedisError

from api.auth import Authenticated, Principal, authenticate
from api.errors import ApiError
from api.responses import JSON
from api.services import Services, services
from core.buckets import iso_utc
from core.events import ID_PATTERN
from core.freshness import Freshness
from core.localtime import month_bounds, parse_tz
from core.usage import QueryError, compute_usage, parse_usage_query, query_edges
from models.usage import UsageAnswer
from view.reader import AccountUsage, ViewNotReady

__all__ = ("check_account", "freshness_fields", "read_usage", "router", "usage_body")

router = APIRouter()
_ACCOUNT = re.compile(ID_PATTERN)


def check_account(account: str, principal: Principal, *, write: bool = False) -> None:
    """400 for a malformed account id, 403 when the token has no scope on it."""
    if not _ACCOUNT.fullmatch(account):
        raise ApiError(400, "invalid_account", f"{account!r} is not a valid account id")
    allowed = principal.can_write(account) if write else principal.can_read(account)
    if not allowed:
        scope = "write" if write else "read"
        raise ApiError(403, "forbidden", f"this token has no {scope} scope on account {account!r}")


async def read_usage(svc: Services, account: str, edges: Sequence[int]) -> AccountUsage:
    """What the account's answer over ``edges`` needs, or 503 while Redis is down or rebuilding."""
    try:
        return await svc.reader.usage(account, edges)
    except ViewNotReady as error:
        raise ApiError(503, "view_rebuilding", str(error), {"Retry-After": "2"}) from None
    except RedisError:
        raise ApiError(
            503, "view_unavailable", "Redis is unreachable", {"Retry-After": "2"}
        ) from None


def freshness_fields(fresh: Freshness) -> dict[str, Any]:
    """``as_of`` (RFC 3339 UTC, null if unknown) and ``lag``."""
    as_of = fresh.as_of_ms
    return {"as_of": None if as_of is None else iso_utc(as_of), "lag": fresh.lag}


def _query_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": description,
    }


_USAGE_PARAMETERS = [
    {"name": "account", "in": "path", "required": True, "schema": {"type": "string"}},
    _query_parameter("from", "RFC 3339 instant or YYYY-MM-DD (local midnight in tz); inclusive"),
    _query_parameter("to", "RFC 3339 instant or YYYY-MM-DD (local midnight in tz); exclusive"),
    _query_parameter("tz", "IANA zone; default: the contract's, else UTC"),
    _query_parameter("window", "none | hour | day | month (local, DST-aware)"),
    _query_parameter("group_by", "app | none"),
]


@router.get(
    "/v1/accounts/{account}/usage",
    response_class=JSON,
    responses={200: {"model": UsageAnswer}},
    summary="Usage of an account over a range, per app, with a local-calendar series",
    openapi_extra={"parameters": _USAGE_PARAMETERS, "security": [{"bearer": []}]},
)
async def get_usage(request: Request) -> Response:
    """Exact usage over ``[from, to)``; every answer says how fresh it is.

    The hottest route: it reads its query string and token itself, because FastAPI's
    per-request parameter resolution cost twice the answer (served from cache) itself. Most
    requests do not even get here: :class:`api.fastpath.UsageFastPath` answers them first.
    """
    principal = await authenticate(request)
    body = await usage_body(
        request.app.state.services, request.path_params["account"], request.query_params, principal
    )
    return Response(body, media_type="application/json")


async def usage_body(
    svc: Services, account: str, params: Mapping[str, str], principal: Principal
) -> bytes:
    """The usage answer as JSON bytes; raises :class:`ApiError` for anything but a 200."""
    start, end = params.get("from"), params.get("to")
    tz, window, group_by = params.get("tz"), params.get("window"), params.get("group_by")
    check_account(account, principal)
    default_tz = await svc.time_zone_of(account)
    try:
        query = parse_usage_query(account, start, end, tz, window, group_by, default_tz)
    except QueryError as error:
        raise ApiError(400, "invalid_query", str(error)) from None
    view = await read_usage(svc, account, query_edges(query))
    key = (account, view.epoch, view.seq, start, end, tz, window, group_by, default_tz)
    body = svc.answers.get(key)
    if body is None:
        body = orjson.dumps(compute_usage(query, view.apps))
        svc.answers.put(key, body)
    # The cached answer ends with "}"; the freshness fields are always current.
    return body[:-1] + b"," + orjson.dumps(freshness_fields(view.freshness))[1:]


@router.get(
    "/v1/accounts/{account}/usage/stream",
    summary="Server-Sent Events: the usage answer again whenever the account's totals change",
    response_class=StreamingResponse,
)
async def stream_usage(
    request: Request,
    principal: Authenticated,
    svc: Annotated[Services, Depends(services)],
    account: Annotated[str, Path()],
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    tz: Annotated[str | None, Query()] = None,
    window: Annotated[str | None, Query()] = None,
    group_by: Annotated[str | None, Query()] = None,
) -> StreamingResponse:
    """``event: usage`` with the same body as the usage answer, on connect and on every change.

    Defaults to the current local month. Freshness is re-sent at least every 5 seconds, so a
    dashboard's "synced N s ago" stays honest even when nothing changes.
    """
    check_account(account, principal)
    default_tz = await svc.time_zone_of(account)
    if not start and not end:
        first, following = month_bounds(time.time_ns() // 1_000_000, parse_tz(tz or default_tz))
        start, end = first.isoformat(), following.isoformat()
    try:
        query = parse_usage_query(account, start, end, tz, window, group_by, default_tz)
    except QueryError as error:
        raise ApiError(400, "invalid_query", str(error)) from None
    edges = query_edges(query)
    await read_usage(svc, account, edges)

    async def events() -> AsyncIterator[bytes]:
        last_version: tuple[bytes, int] | None = None
        last_sent = 0.0
        body: dict[str, Any] = {}
        while not await request.is_disconnected():
            try:
                # Freshness before the data: what it claims is then in what follows.
                fresh = await svc.reader.freshness()
                version = await svc.reader.version(account)
                if version != last_version:
                    view = await svc.reader.usage(account, edges)
                    body = compute_usage(query, view.apps)
                    version = (view.epoch, view.seq)
            except (ViewNotReady, RedisError) as error:
                yield _sse("unavailable", {"message": str(error)})
                await asyncio.sleep(1)
                continue
            now = time.monotonic()
            if version != last_version or now - last_sent >= 5:
                yield _sse("usage", {**body, **freshness_fields(fresh)})
                last_version, last_sent = version, now
            await asyncio.sleep(0.2)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _sse(event: str, payload: Any) -> bytes:
    return f"event: {event}\ndata: ".encode() + orjson.dumps(payload) + b"\n\n"
