"""``GET /v1/accounts/{account}/usage/stream``: the usage answer pushed as Server-Sent Events.

A stream is long-lived, so one token could otherwise open thousands of them. Each is bounded:
streams per token and in all (``CREDITFLOW_SSE_STREAMS_PER_TOKEN``, ``..._TOTAL``: 429 beyond;
access streams, :mod:`api.routes.access`, take their slots from the same :class:`SlotResponse`),
series windows per stream (``CREDITFLOW_SSE_MAX_POINTS``: 400 beyond), one shared Redis read
per account and poll however many streams follow it, and answers rendered once per change
through the usage answer cache, large ones off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError

from api.answers import render_answer, with_freshness
from api.auth import Authenticated
from api.deps import (
    POLL_SECONDS,
    SlotResponse,
    check_account,
    parse_query,
    read_usage,
    shared_version,
)
from api.errors import ApiError
from api.services import Services, services
from config.clock import now_ms
from core.localtime import month_bounds, parse_tz
from core.usage import UsageQuery, query_edges
from view.reader import ViewNotReady

__all__ = ("router",)

router = APIRouter()

logger = logging.getLogger(__name__)

_KEEPALIVE_SECONDS = 5.0


@router.get(
    "/v1/accounts/{account}/usage/stream",
    summary="Server-Sent Events: the usage answer again whenever the account's totals change",
    response_class=StreamingResponse,
    responses={429: {"description": "too many open streams for this token or server"}},
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
        try:
            zone = parse_tz(tz or default_tz)
        except ValueError as error:
            raise ApiError(400, "invalid_query", f"tz: {error}") from None
        first, following = month_bounds(now_ms(), zone)
        start, end = first.isoformat(), following.isoformat()
    max_points = svc.settings.sse_max_points
    query = parse_query(account, start, end, tz, window, group_by, default_tz, max_points)
    await read_usage(svc, account, query_edges(query))
    refusal = svc.streams.acquire(principal.name)
    if refusal is not None:
        raise ApiError(429, "too_many_streams", refusal, {"Retry-After": "5"})
    # The same cache key as the usage route: streams and polls of one question share answers.
    key = (account, start, end, tz, window, group_by, default_tz)
    return SlotResponse(
        _frames(request, svc, query, key), lambda: svc.streams.release(principal.name)
    )


async def _frames(
    request: Request, svc: Services, query: UsageQuery, key: tuple[Any, ...]
) -> AsyncIterator[bytes]:
    edges = query_edges(query)
    last_version: tuple[bytes, int] | None = None
    last_sent = 0.0
    while not await request.is_disconnected():
        try:
            # Freshness before the data: what it claims is then in what follows. The version
            # read is shared by every stream of the account polling now (one Redis call).
            fresh = await svc.reader.freshness()
            version = await shared_version(svc, query.account_id)
            now = time.monotonic()
            if version != last_version or now - last_sent >= _KEEPALIVE_SECONDS:
                cache_key = (key[0], *version, *key[1:])
                body = svc.answers.get(cache_key)
                if body is None:
                    view = await svc.reader.usage(query.account_id, edges)
                    cache_key = (key[0], view.epoch, view.seq, *key[1:])
                    try:
                        body = await render_answer(svc, cache_key, query, view.apps)
                    except ApiError as error:
                        yield _sse("error", {"code": error.code, "message": error.message})
                        return
                yield b"event: usage\ndata: " + with_freshness(body, fresh) + b"\n\n"
                last_version, last_sent = version, now
        except ViewNotReady:
            yield _sse("unavailable", {"message": "the usage view is being rebuilt; retrying"})
            await asyncio.sleep(1)
            continue
        except RedisError as error:
            logger.warning("usage stream: Redis is unreachable: %s", error)
            yield _sse("unavailable", {"message": "Redis is unreachable; retrying"})
            await asyncio.sleep(1)
            continue
        await asyncio.sleep(POLL_SECONDS)


def _sse(event: str, payload: Any) -> bytes:
    return f"event: {event}\ndata: ".encode() + orjson.dumps(payload) + b"\n\n"
