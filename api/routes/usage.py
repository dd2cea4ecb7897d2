"""``GET /v1/accounts/{account}/usage``: totals, per-app breakdown and local-calendar series."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from redis.exceptions import RedisError

from api.auth import Principal, authenticate
from api.errors import ApiError
from api.responses import JSON
from api.services import Services
from core.buckets import iso_utc
from core.events import ID_PATTERN
from core.freshness import Freshness
from core.localtime import OffGridOffset, quoted
from core.usage import (
    MAX_SERIES_POINTS,
    SHORTEST_WINDOW_MS,
    AppDays,
    QueryError,
    UsageQuery,
    compute_usage,
    parse_usage_query,
    query_edges,
)
from models.usage import UsageAnswer
from view.reader import AccountUsage, ViewNotReady

__all__ = (
    "check_account",
    "freshness_fields",
    "parse_query",
    "read_usage",
    "render_answer",
    "router",
    "usage_body",
    "with_freshness",
)

router = APIRouter()
_ACCOUNT = re.compile(ID_PATTERN)


def check_account(account: str, principal: Principal, *, write: bool = False) -> None:
    """400 for a malformed account id, 403 when the token has no scope on it."""
    if not _ACCOUNT.fullmatch(account):
        raise ApiError(400, "invalid_account", f"{quoted(account)} is not a valid account id")
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
    # A bad query is a 400 even while the view is rebuilding: parse before reading.
    query = parse_query(account, start, end, tz, window, group_by, default_tz)
    view = await read_usage(svc, account, query_edges(query))
    key = (account, view.epoch, view.seq, start, end, tz, window, group_by, default_tz)
    body = svc.answers.get(key)
    if body is None:
        body = await render_answer(svc, key, query, view.apps)
    return with_freshness(body, view.freshness)


def parse_query(
    account: str,
    start: str | None,
    end: str | None,
    tz: str | None,
    window: str | None,
    group_by: str | None,
    default_tz: str,
    max_points: int = MAX_SERIES_POINTS,
) -> UsageQuery:
    """:func:`core.usage.parse_usage_query`, with a 400 for a bad query."""
    try:
        return parse_usage_query(account, start, end, tz, window, group_by, default_tz, max_points)
    except QueryError as error:
        raise ApiError(400, "invalid_query", str(error)) from None


# Above this many (window, app) cells (~5 ms of work) an answer is computed in a thread: a long
# per-app hourly series takes a good part of a second, which must not stall every other
# request. Below it, inline is faster: the thread hop, and the GIL the event loop then waits
# for (up to its 5 ms switch interval), cost more than they spare (one-year daily per-app
# series, ~4,000 cells, at 50 dashboards: p50 44 ms inline against 67-115 ms in the thread).
_INLINE_CELLS = 10_000


async def render_answer(
    svc: Services, key: tuple[object, ...], query: UsageQuery, apps: Mapping[str, AppDays]
) -> bytes:
    """The answer's JSON without freshness, computed (off the loop if large) and cached."""
    shortest = SHORTEST_WINDOW_MS.get(query.window)
    windows = 0 if shortest is None else (query.end_ms - query.start_ms) // shortest + 1
    try:
        if windows * (len(apps) + 1) <= _INLINE_CELLS:
            # One turn of the loop first: requests that arrived meanwhile send their reads, so
            # Redis works on them while this answer is computed instead of after it.
            await asyncio.sleep(0)
            body = _render(query, apps)
        else:
            loop = asyncio.get_running_loop()
            body = await loop.run_in_executor(svc.compute, _render, query, apps)
    except OffGridOffset as error:
        raise ApiError(400, "invalid_query", str(error)) from None
    svc.answers.put(key, body)
    return body


def _render(query: UsageQuery, apps: Mapping[str, AppDays]) -> bytes:
    return orjson.dumps(compute_usage(query, apps))


def with_freshness(body: bytes, fresh: Freshness) -> bytes:
    """A rendered answer with the view's current ``as_of`` and ``lag`` appended."""
    # The cached answer ends with "}"; the freshness fields are always current.
    return body[:-1] + b"," + orjson.dumps(freshness_fields(fresh))[1:]
