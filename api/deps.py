"""What the routes share: the account check, reads of the view, the usage query, streams.

Every route module (``api/routes/``, ``api/openmeter/``) takes these from here rather than from
a sibling route, so a route can change without reaching into another.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Final

from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError
from starlette.types import Receive, Scope, Send

from api.auth import Principal
from api.errors import ApiError
from api.services import Services
from core.buckets import iso_utc
from core.events import is_id
from core.freshness import Freshness
from core.localtime import quoted
from core.usage import (
    MAX_SERIES_POINTS,
    QueryError,
    UsageQuery,
    parse_usage_query,
)
from view.keys import as_text
from view.reader import AccountUsage, ViewNotReady

__all__ = (
    "POLL_SECONDS",
    "SlotResponse",
    "check_account",
    "check_account_id",
    "freshness_fields",
    "parse_query",
    "read_usage",
    "readable_accounts",
    "shared_version",
    "used_between",
    "view_unavailable",
)

POLL_SECONDS: Final = 0.2
"""How often a stream reads its account's view version (shared by every stream of it)."""


def check_account_id(account: str) -> None:
    """400 for a malformed account id (the one check of every route that names an account)."""
    if not is_id(account):
        raise ApiError(400, "invalid_account", f"{quoted(account)} is not a valid account id")


def check_account(account: str, principal: Principal, *, write: bool = False) -> None:
    """400 for a malformed account id, 403 when the token has no scope on it."""
    check_account_id(account)
    allowed = principal.can_write(account) if write else principal.can_read(account)
    if not allowed:
        scope = "write" if write else "read"
        raise ApiError(403, "forbidden", f"this token has no {scope} scope on account {account!r}")


@contextlib.contextmanager
def view_errors() -> Iterator[None]:
    """A view read's failures as the API answers them: 503 while rebuilding or unreachable."""
    try:
        yield
    except ViewNotReady as error:
        raise ApiError(503, "view_rebuilding", str(error), {"Retry-After": "2"}) from None
    except RedisError:
        raise view_unavailable() from None


async def read_usage(svc: Services, account: str, edges: Sequence[int]) -> AccountUsage:
    """What the account's answer over ``edges`` needs, or 503 while Redis is down or rebuilding."""
    with view_errors():
        return await svc.reader.usage(account, edges)


async def accounts_with_usage(svc: Services) -> list[str]:
    """Every account with usage in the view, sorted (503 if Redis is unreachable)."""
    with view_errors():
        members = await svc.redis.smembers(svc.reader.keys.accounts)
    return sorted(as_text(member) for member in members)


def view_unavailable() -> ApiError:
    """The 503 of a route whose Redis read failed."""
    return ApiError(503, "view_unavailable", "Redis is unreachable", {"Retry-After": "2"})


def freshness_fields(fresh: Freshness) -> dict[str, Any]:
    """``as_of`` (RFC 3339 UTC, null if unknown) and ``lag``."""
    as_of = fresh.as_of_ms
    return {"as_of": None if as_of is None else iso_utc(as_of), "lag": fresh.lag}


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


def readable_accounts(principal: Principal) -> list[str] | None:
    """Accounts a principal may read, sorted; None when it may read every account (admin)."""
    if principal.is_admin:
        return None
    return sorted(
        {scope.partition(":")[2] for scope in principal.scopes if scope.startswith("read:")}
    )


def used_between(view: AccountUsage, start_ms: int, end_ms: int) -> int:
    """Micro-credits the account used in ``[start_ms, end_ms)``: the one billing computation.

    The billing page and the access check both count "used this period" through here; ``view``
    must have been read with both instants among its edges.
    """
    return sum(app.between(start_ms, end_ms)[2] for app in view.apps.values())


class SlotResponse(StreamingResponse):
    """A stream that gives its slot back however it ends (done, disconnect, cancellation)."""

    def __init__(self, body: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        super().__init__(
            body,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream the body, then release the slot."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def shared_version(svc: Services, account: str) -> tuple[bytes, int]:
    """The account's view version, read once per poll interval however many streams ask."""
    now = time.monotonic()
    shared = svc.stream_versions.get(account)
    if shared is None or now - shared[0] >= POLL_SECONDS:
        if len(svc.stream_versions) > 2 * svc.settings.sse_streams_total:
            svc.stream_versions.clear()  # accounts nobody follows any more
        shared = (now, asyncio.ensure_future(svc.reader.version(account)))
        svc.stream_versions[account] = shared
    return await asyncio.shield(shared[1])
