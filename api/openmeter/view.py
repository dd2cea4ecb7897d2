"""The OpenMeter surface's only way into the serving view.

Meter queries are answered by creditflow's own usage computation, account by account, and
nothing else here knows how the view stores buckets: when the view reader or the usage
computation changes, this module is the one to follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.exceptions import RedisError

from api.errors import ApiError
from api.routes.usage import freshness_fields, read_account
from api.services import Services
from core.buckets import BUCKET_MS
from core.usage import QueryError, compute_usage, parse_usage_query
from view.keys import ACCOUNTS, as_text

__all__ = ("accounts_with_usage", "extent_of", "usage_of")


async def usage_of(svc: Services, account: str, params: Mapping[str, str]) -> dict[str, Any]:
    """The account's ``GET /v1/accounts/{account}/usage`` answer for ``params``, as a dict."""
    view = await read_account(svc, account, max_age=0.02)
    try:
        query = parse_usage_query(
            account,
            params["from"],
            params["to"],
            params["tz"],
            params["window"],
            params["group_by"],
            "UTC",
        )
    except QueryError as error:
        raise ApiError(400, "invalid_query", str(error)) from None
    answer = compute_usage(query, view.apps)
    answer.update(freshness_fields(view))
    return answer


async def extent_of(svc: Services, account: str) -> tuple[int, int] | None:
    """``(first bucket start, last bucket end)`` of the account's usage, None without any."""
    view = await read_account(svc, account, max_age=0.02)
    starts = [series.starts for series in view.apps.values() if series.starts]
    if not starts:
        return None
    return min(s[0] for s in starts), max(s[-1] for s in starts) + BUCKET_MS


async def accounts_with_usage(svc: Services) -> list[str]:
    """Every account with usage in the view, sorted."""
    try:
        members = await svc.redis.smembers(ACCOUNTS)
    except RedisError:
        raise ApiError(
            503, "view_unavailable", "Redis is unreachable", {"Retry-After": "2"}
        ) from None
    return sorted(as_text(member) for member in members)
