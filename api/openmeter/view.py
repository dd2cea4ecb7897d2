"""The OpenMeter surface's only way into the serving view.

Meter queries are answered by creditflow's own usage computation, account by account, and
nothing else here knows how the view stores usage: when the view reader or the usage
computation changes, this module is the one to follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from api.answers import cached_answer
from api.deps import freshness_fields, view_errors
from api.services import Services

__all__ = ("extent_of", "usage_of")


async def usage_of(svc: Services, account: str, params: Mapping[str, str]) -> dict[str, Any]:
    """The account's ``GET /v1/accounts/{account}/usage`` answer for ``params``, as a dict.

    The same parsing, limits, view read, computation and answer cache as the ``/v1`` route.
    """
    body, freshness = await cached_answer(svc, account, params, "UTC")
    answer: dict[str, Any] = orjson.loads(body)
    answer.update(freshness_fields(freshness))
    return answer


async def extent_of(svc: Services, account: str) -> tuple[int, int] | None:
    """``(first bucket start, last bucket end)`` of the account's usage, None without any."""
    with view_errors():
        return await svc.reader.extent(account)
