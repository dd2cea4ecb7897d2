"""The usage answer: parsed before the view is read, rendered once per change, then cached.

:func:`usage_body` is the answer of ``GET /v1/accounts/{account}/usage``, on its fast path
(:mod:`api.fastpath`) and its route alike; streams and the OpenMeter queries render through
:func:`render_answer` and :func:`with_freshness`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import orjson

from api.auth import Principal
from api.deps import check_account, freshness_fields, parse_query, read_usage
from api.errors import ApiError
from api.services import Services
from core.freshness import Freshness
from core.localtime import OffGridOffset
from core.usage import (
    SHORTEST_WINDOW_MS,
    AppDays,
    UsageQuery,
    query_edges,
    render_usage,
)

__all__ = ("cached_answer", "render_answer", "usage_body", "with_freshness")


async def usage_body(
    svc: Services, account: str, params: Mapping[str, str], principal: Principal
) -> bytes:
    """The usage answer as JSON bytes; raises :class:`ApiError` for anything but a 200."""
    check_account(account, principal)
    body, freshness = await cached_answer(svc, account, params, await svc.time_zone_of(account))
    return with_freshness(body, freshness)


async def cached_answer(
    svc: Services, account: str, params: Mapping[str, str], default_tz: str
) -> tuple[bytes, Freshness]:
    """The rendered answer for ``params`` (from the cache while the account is unchanged)."""
    start, end = params.get("from"), params.get("to")
    tz, window, group_by = params.get("tz"), params.get("window"), params.get("group_by")
    # A bad query is a 400 even while the view is rebuilding: parse before reading.
    query = parse_query(account, start, end, tz, window, group_by, default_tz)
    view = await read_usage(svc, account, query_edges(query))
    key = (account, view.epoch, view.seq, start, end, tz, window, group_by, default_tz)
    body = svc.answers.get(key)
    if body is None:
        body = await render_answer(svc, key, query, view.apps)
    return body, view.freshness


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
            body = render_usage(query, apps)
        else:
            loop = asyncio.get_running_loop()
            body = await loop.run_in_executor(svc.compute, render_usage, query, apps)
    except OffGridOffset as error:
        raise ApiError(400, "invalid_query", str(error)) from None
    svc.answers.put(key, body)
    return body


def with_freshness(body: bytes, fresh: Freshness) -> bytes:
    """A rendered answer with the view's current ``as_of`` and ``lag`` appended."""
    # The cached answer ends with "}"; the freshness fields are always current.
    return body[:-1] + b"," + orjson.dumps(freshness_fields(fresh))[1:]
