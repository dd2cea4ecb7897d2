"""``/v1/accounts/{account}/usage`` while the view is ready, rebuilding or down, broker-free.

The app runs in process (httpx's ASGI transport) over a stand-in for the view reader; the
account's time zone comes from the contracts file, as it does when Kafka is unreachable. The
real Redis behind the same answers is tests/integration/test_api.py's and test_view.py's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import cast

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from api.app import create_app
from api.services import Services
from config.settings import Settings
from core.days import Bucket, DayUsage
from core.freshness import Freshness
from core.usage import AppDays
from tests.core.support import T0
from view.reader import AccountUsage, ViewNotReady, ViewReader

ADMIN = "an-admin-secret-0123"
DAY = T0 // 86_400_000  # 2026-11-27
QUERY = {"from": "2026-11-27", "to": "2026-11-28", "tz": "UTC"}


class _View:
    """The reader's ``usage`` over one account-day, or the failure the view is in."""

    def __init__(self) -> None:
        self.failure: Exception | None = None
        self.reads: list[tuple[str, Sequence[int]]] = []

    async def usage(self, account_id: str, edges: Sequence[int]) -> AccountUsage:
        self.reads.append((account_id, edges))
        if self.failure is not None:
            raise self.failure
        day = DayUsage(3, {4: Bucket(2, 7_500_000), 40: Bucket(1, 250_000)})
        apps = {"bot": AppDays.from_days({DAY: day})}
        return AccountUsage(apps, Freshness(T0 + 3_600_000, 0), seq=3, epoch=b"e1")


@pytest.fixture
async def api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, _View]]:
    app = create_app(Settings(admin_token=ADMIN, tokens_file=tmp_path / "none.yaml"))
    svc: Services = app.state.services
    view = _View()
    svc.reader = cast(ViewReader, view)

    async def from_file(account_id: str) -> str:
        return svc.contracts.time_zone_of(account_id)

    monkeypatch.setattr(svc, "time_zone_of", from_file)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://creditflow.test", headers=headers
    ) as client:
        yield client, view


async def test_a_ready_view_answers_exact_totals(api: tuple[httpx.AsyncClient, _View]) -> None:
    client, view = api
    response = await client.get("/v1/accounts/acme/usage", params=QUERY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["total"]["calls"], body["total"]["credits"]) == (3, "7.75")
    assert body["lag"] == 0 and body["as_of"] == "2026-11-27T01:00:00Z"
    assert view.reads and view.reads[0][0] == "acme"


async def test_a_bad_query_is_400_even_while_the_view_rebuilds(
    api: tuple[httpx.AsyncClient, _View],
) -> None:
    client, view = api
    view.failure = ViewNotReady("view is being rebuilt")
    response = await client.get("/v1/accounts/acme/usage", params={**QUERY, "from": "soon"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_query"
    assert view.reads == []  # judged before the view was asked


async def _usage_failing(
    api: tuple[httpx.AsyncClient, _View], failure: Exception
) -> httpx.Response:
    """A good usage query while every view read raises ``failure``."""
    client, view = api
    view.failure = failure
    return await client.get("/v1/accounts/acme/usage", params=QUERY)


async def test_a_good_query_while_the_view_rebuilds_is_503_with_retry_after(
    api: tuple[httpx.AsyncClient, _View],
) -> None:
    response = await _usage_failing(api, ViewNotReady("view is being rebuilt"))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "view_rebuilding"
    assert response.headers["Retry-After"] == "2"


async def test_redis_down_is_503_without_the_driver_error(
    api: tuple[httpx.AsyncClient, _View],
) -> None:
    response = await _usage_failing(
        api, RedisConnectionError("Error 111 connecting to 10.0.0.7:6379")
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "view_unavailable"
    assert "10.0.0.7" not in response.text


async def test_a_malformed_account_is_400_before_any_read(
    api: tuple[httpx.AsyncClient, _View],
) -> None:
    client, view = api
    response = await client.get("/v1/accounts/ac%20me/usage", params=QUERY)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_account"
    assert view.reads == []
