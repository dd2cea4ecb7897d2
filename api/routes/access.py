"""``GET /v1/accounts/{account}/access``: may the account keep calling? Cheap enough per request.

The answer comes from the serving view and the contract already in memory: one Redis call
(the period's two edges; month rows already cached are not sent again), no framework on the
hot path (:class:`AccessFastPath`). ``/access/stream`` pushes the answer again whenever
``has_access`` flips, so a gateway can cache the decision and still stop within moments of the
allotment; its streams count against the same per-token and per-process limits as usage
streams, and each poll reads the account's version once however many streams follow it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError
from starlette.types import Scope

from api.auth import Authenticated, Principal
from api.deps import (
    POLL_SECONDS,
    SlotResponse,
    check_account,
    shared_version,
)
from api.errors import ApiError
from api.fastpath import AccountFastPath
from api.responses import JSON
from api.services import Services, services
from api.standing import Standing, standing_of
from config.clock import now_ms
from core.money import format_micro
from view.reader import ViewNotReady

__all__ = ("AccessFastPath", "access_body", "router")

router = APIRouter()

logger = logging.getLogger(__name__)

_KEEPALIVE_SECONDS = 15.0


def access_body(standing: Standing) -> dict[str, Any]:
    """The access answer: decimal strings for credits, ``as_of`` for freshness."""
    access = standing.access
    return {
        "has_access": access.has_access,
        "remaining": format_micro(access.remaining_micro),
        "used": format_micro(access.used_micro),
        "allotment": format_micro(access.allotment_micro),
        "hard_limit": access.hard_limit,
        "as_of": standing.as_of,
    }


@router.get(
    "/v1/accounts/{account}/access",
    response_class=JSON,
    summary="Whether the account may keep calling: used, remaining and the hard-limit decision",
)
async def get_access(
    account: str, principal: Authenticated, svc: Annotated[Services, Depends(services)]
) -> JSON:
    """``has_access`` is false only on a ``hard_limit`` contract whose allotment is used up."""
    check_account(account, principal)
    return JSON(access_body(await standing_of(svc, account)))


@router.get(
    "/v1/accounts/{account}/access/stream",
    response_class=StreamingResponse,
    summary="Server-Sent Events: the access answer on connect and whenever has_access flips",
    responses={429: {"description": "too many open streams for this token or server"}},
)
async def stream_access(
    request: Request,
    account: str,
    principal: Authenticated,
    svc: Annotated[Services, Depends(services)],
) -> StreamingResponse:
    """``event: access`` on connect and on every flip; a comment line keeps idle streams open."""
    check_account(account, principal)
    first = await standing_of(svc, account)
    refusal = svc.streams.acquire(principal.name)
    if refusal is not None:
        raise ApiError(429, "too_many_streams", refusal, {"Retry-After": "5"})
    return SlotResponse(
        _flips(request, svc, account, first), lambda: svc.streams.release(principal.name)
    )


async def _flips(
    request: Request, svc: Services, account: str, first: Standing
) -> AsyncIterator[bytes]:
    """The first answer, then one per flip of ``has_access``.

    The decision is computed again only when it can have changed: the account's usage moved
    (its view version, one read per poll shared by every stream of the account), its contract
    changed, or the period ended.
    """
    yield _sse(access_body(first))
    last = first
    seen: tuple[object, ...] | None = None
    quiet_since = time.monotonic()
    while not await request.is_disconnected():
        await asyncio.sleep(POLL_SECONDS)
        try:
            terms = (await svc.accounts()).terms_for(account)
            version = await shared_version(svc, account)
            now = now_ms()
            state = (version, terms, last.period.contains(now))
            if state != seen:
                standing = await standing_of(svc, account)
                seen = state
                if standing.access.has_access != last.access.has_access:
                    quiet_since = time.monotonic()
                    yield _sse(access_body(standing))
                last = standing
        except (ApiError, ViewNotReady, RedisError) as error:
            # Keep the last decision: the client sees no flip until it is known.
            logger.debug("access stream of %s: %s", account, error)
        if time.monotonic() - quiet_since >= _KEEPALIVE_SECONDS:
            quiet_since = time.monotonic()
            yield b": keep-alive\n\n"


def _sse(body: dict[str, Any]) -> bytes:
    return b"event: access\ndata: " + orjson.dumps(body) + b"\n\n"


class AccessFastPath(AccountFastPath):
    """Serve 200 access answers directly; pass everything else (errors too) to ``app``."""

    suffix = "/access"

    async def render(self, scope: Scope, account: str, principal: Principal) -> bytes | None:
        """The access answer, or ``None`` on any error."""
        try:
            check_account(account, principal)
            return orjson.dumps(access_body(await standing_of(self.services, account)))
        except Exception:
            # Errors (and any surprise) are answered by the full stack, which runs the same
            # code again inside FastAPI's error handling: its 4xx/5xx shape, its logging.
            return None
