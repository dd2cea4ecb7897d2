"""The HTTP API on the real stack: auth scopes, clear 4xx errors, ingest through Kafka."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from tests.integration.harness import (
    ARTIFACTS,
    ApiProcess,
    Namespace,
    WorkerProcess,
    api_client,
    auth,
    new_env,
    wait_until,
)

READ_TOKEN = "read-token-of-acme"
WRITE_TOKEN = "write-token-of-acme"


def _tokens_file(env: Namespace, account: str) -> str:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{env.name}-tokens.yaml"
    entries = [
        {
            "name": "reader",
            "sha256": hashlib.sha256(READ_TOKEN.encode()).hexdigest(),
            "scopes": [f"read:{account}"],
        },
        {
            "name": "writer",
            "sha256": hashlib.sha256(WRITE_TOKEN.encode()).hexdigest(),
            "scopes": [f"write:{account}", f"read:{account}"],
        },
    ]
    path.write_text(json.dumps({"tokens": entries}))  # JSON is valid YAML
    return str(path)


@pytest.fixture(scope="module")
async def api() -> AsyncIterator[tuple[Namespace, httpx.AsyncClient, str]]:
    env = new_env("api")
    account = f"acme-{env.name[-8:]}"
    env.extra["CREDITFLOW_TOKENS_FILE"] = _tokens_file(env, account)
    worker = WorkerProcess(env).start()
    try:
        await worker.wait_assigned()
        async with api_client(env.settings()) as client:
            yield env, client, account
    finally:
        worker.stop()


def _event(
    account: str, event_id: str, credits: str, minutes_ago: int = 5, app: str = "chat"
) -> dict:
    occurred = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return {
        "event_id": event_id,
        "account_id": account,
        "app_id": app,
        "occurred_at": occurred.isoformat(),
        "credits": credits,
    }


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"from": "2026-11-01T00:07:00Z", "to": "2026-11-02"}, "15-minute"),
        ({"from": "2026-11-01T00:00:30Z", "to": "2026-11-02"}, "15-minute"),
        ({"from": "2026-11-01", "to": "2026-11-02", "tz": "Mars/Olympus"}, "unknown time zone"),
        ({"from": "2026-11-01T00:00:00", "to": "2026-11-02"}, "no UTC offset"),
        ({"from": "2026-11-02", "to": "2026-11-02"}, "before"),
        ({"from": "2026-11-03", "to": "2026-11-02"}, "before"),
        ({"from": "yesterday", "to": "2026-11-02"}, "RFC 3339"),
        ({"from": "2026-02-30", "to": "2026-03-02"}, "not a valid date"),
        ({"from": "2026-11-01", "to": "2026-11-02", "window": "week"}, "window"),
        ({"from": "2026-11-01", "to": "2026-11-02", "group_by": "model"}, "group_by"),
        ({"to": "2026-11-02"}, "required"),
    ],
)
async def test_bad_queries_get_a_clear_400(api, params: dict, fragment: str) -> None:
    env, client, account = api
    response = await client.get(f"/v1/accounts/{account}/usage", params=params, headers=auth())
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_query"
    assert fragment in error["message"]


async def test_tokens_and_scopes(api) -> None:
    env, client, account = api
    path = f"/v1/accounts/{account}/usage"
    params = {"from": "2026-11-01", "to": "2026-11-02"}
    missing = await client.get(path, params=params)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await client.get(path, params=params, headers=auth("not-a-token"))
    assert wrong.status_code == 401
    other = await client.get("/v1/accounts/globex/usage", params=params, headers=auth(READ_TOKEN))
    assert other.status_code == 403
    assert "globex" in other.json()["error"]["message"]
    mine = await client.get(path, params=params, headers=auth(READ_TOKEN))
    assert mine.status_code == 200, mine.text
    invalid_account = await client.get("/v1/accounts/bad%20id/usage", params=params, headers=auth())
    assert invalid_account.status_code == 400


async def test_post_events_reaches_usage_and_reports_rejections(api) -> None:
    env, client, account = api
    good = [_event(account, f"http-{i}", "1.25", app="search") for i in range(3)]
    bad_credits = _event(account, "http-bad", "-4")
    too_late = _event(account, "http-late", "1", minutes_ago=60 * 24 * 40)
    other_account = _event("globex", "http-other", "1")
    body = [*good, bad_credits, too_late, other_account]
    response = await client.post("/v1/events", json=body, headers=auth(WRITE_TOKEN))
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["accepted"] == 3
    assert {(item["index"], item["reason"]) for item in answer["rejected"]} == {
        (3, "invalid_event"),
        (4, "too_late"),
        (5, "forbidden_account"),
    }
    # A retry of the same events (same ids) is accepted again by HTTP and counted once.
    again = await client.post("/v1/events", json=good, headers=auth(WRITE_TOKEN))
    assert again.json()["accepted"] == 3
    start = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:00:00Z")
    end = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:00:00Z")

    async def counted() -> bool:
        usage = await client.get(
            f"/v1/accounts/{account}/usage",
            params={"from": start, "to": end},
            headers=auth(READ_TOKEN),
        )
        return usage.status_code == 200 and usage.json()["total"]["calls"] >= 3

    await wait_until(counted, timeout=30)
    usage = (
        await client.get(
            f"/v1/accounts/{account}/usage",
            params={"from": start, "to": end},
            headers=auth(READ_TOKEN),
        )
    ).json()
    assert usage["apps"] == [{"app_id": "search", "calls": 3, "credits": "3.75"}]
    assert Decimal(usage["total"]["credits"]) == Decimal("3.75")


async def test_post_events_errors(api) -> None:
    env, client, account = api
    read_only = await client.post(
        "/v1/events", json=_event(account, "x", "1"), headers=auth(READ_TOKEN)
    )
    assert read_only.status_code == 202
    assert read_only.json()["rejected"][0]["reason"] == "forbidden_account"
    broken = await client.post(
        "/v1/events",
        content=b'{"event_id": ',
        headers={**auth(WRITE_TOKEN), "content-type": "application/json"},
    )
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_json"
    too_many = await client.post(
        "/v1/events",
        json=[_event(account, f"m{i}", "1") for i in range(1001)],
        headers=auth(WRITE_TOKEN),
    )
    assert too_many.status_code == 400
    assert too_many.json()["error"]["code"] == "batch_too_large"
    anonymous = await client.post("/v1/events", json=_event(account, "y", "1"))
    assert anonymous.status_code == 401


async def test_health_and_metrics(api) -> None:
    env, client, account = api

    async def healthy() -> bool:
        response = await client.get("/healthz")
        return response.status_code == 200 and response.json()["status"] == "ok"

    await wait_until(healthy, timeout=30)
    health = (await client.get("/healthz")).json()
    assert health["view"] == "ready"
    assert health["partitions_reporting"] == env.partitions
    metrics = (await client.get("/metrics")).text
    assert "creditflow_consumer_lag{partition=" in metrics
    assert 'creditflow_events_total{outcome="accepted"}' in metrics
    assert "creditflow_freshness_seconds " in metrics


async def test_usage_stream_pushes_new_totals(api) -> None:
    env, client, account = api
    today = datetime.now(UTC).date()
    params = {
        "from": (today - timedelta(days=1)).isoformat(),
        "to": (today + timedelta(days=1)).isoformat(),
        "tz": "UTC",
    }
    # A real server: in-process ASGI transports buffer whole responses, and this one never ends.
    server = await ApiProcess(env).start().ready()
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=20) as real,
        real.stream(
            "GET", f"/v1/accounts/{account}/usage/stream", params=params, headers=auth(READ_TOKEN)
        ) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()

        async def next_usage() -> dict:
            event = None
            async for line in lines:
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "usage":
                    return json.loads(line[6:])
            raise AssertionError("stream ended")

        first = await asyncio.wait_for(next_usage(), 10)
        before = Decimal(first["total"]["credits"])
        sent = await client.post(
            "/v1/events",
            json=[_event(account, "sse-1", "2.5", app="stream")],
            headers=auth(WRITE_TOKEN),
        )
        assert sent.json()["accepted"] == 1

        async def changed() -> dict:
            while True:
                answer = await next_usage()
                if Decimal(answer["total"]["credits"]) != before:
                    return answer

        after = await asyncio.wait_for(changed(), 15)
        assert Decimal(after["total"]["credits"]) == before + Decimal("2.5")
        assert {"app_id": "stream", "calls": 1, "credits": "2.5"} in after["apps"]
        assert after["as_of"] is not None
    server.stop()
