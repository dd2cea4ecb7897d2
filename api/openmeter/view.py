"""The OpenMeter surface's only way into the serving view.

Meter queries are answered by creditflow's own usage computation, account by account, and
nothing else here knows how the view stores usage: when the view reader or the usage
computation changes, this module is the one to follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from redis.exceptions import RedisError

from api.answers import render_answer
from api.deps import freshness_fields, parse_query, read_usage, view_unavailable
from api.errors import ApiError
from api.services import Services
from core.usage import query_edges
from view.keys import as_text
from view.reader import ViewNotReady

__all__ = ("accounts_with_usage", "extent_of", "usage_of")


async def usage_of(svc: Services, account: str, params: Mapping[str, str]) -> dict[str, Any]:
    """The account's ``GET /v1/accounts/{account}/usage`` answer for ``params``, as a dict.

    The same parsing, limits, view read, computation and answer cache as the ``/v1`` route.
    """
    start, end, tz = params["from"], params["to"], params["tz"]
    window, group_by = params["window"], params["group_by"]
    query = parse_query(account, start, end, tz, window, group_by, "UTC")
    view = await read_usage(svc, account, query_edges(query))
    key = (account, view.epoch, view.seq, start, end, tz, window, group_by, "UTC")
    body = svc.answers.get(key)
    if body is None:
        body = await render_answer(svc, key, query, view.apps)
    answer: dict[str, Any] = orjson.loads(body)
    answer.update(freshness_fields(view.freshness))
    return answer


async def extent_of(svc: Services, account: str) -> tuple[int, int] | None:
    """``(first bucket start, last bucket end)`` of the account's usage, None without any."""
    try:
        return await svc.reader.extent(account)
    except ViewNotReady as error:
        raise ApiError(503, "view_rebuilding", str(error), {"Retry-After": "2"}) from None
    except RedisError:
        raise view_unavailable() from None


async def accounts_with_usage(svc: Services) -> list[str]:
    """Every account with usage in the view, sorted."""
    try:
        members = await svc.redis.smembers(svc.reader.keys.accounts)
    except RedisError:
        raise view_unavailable() from None
    return sorted(as_text(member) for member in members)
