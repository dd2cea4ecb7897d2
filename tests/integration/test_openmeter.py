"""OpenMeter's own SDKs, unchanged, against the real stack (a worker and an API process).

Python SDK 1.0.0b236 and 1.0.0b188 run in virtual environments of their own and the
JavaScript SDK runs with node (``scripts/openmeter-sdks`` installs them under .local/sdk); each
is driven through openmeter_clients/ as an application would call it. Every number a client
reads is compared with creditflow's own ``/v1`` answer for the same question.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from api.app import create_app
from tests.integration.harness import (
    ADMIN_TOKEN,
    ARTIFACTS,
    ROOT,
    ApiProcess,
    Namespace,
    WorkerProcess,
    auth,
    new_env,
    wait_until,
)

CLIENTS_DIR = Path(__file__).parent / "openmeter_clients"
SDK_DIR = ROOT / ".local" / "sdk"
CLIENTS = ("b236", "b188", "js")
SEOUL = ZoneInfo("Asia/Seoul")
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
TODAY = NOW.replace(hour=0, minute=0)
STREAMER_TOKEN = "streamer-of-raw-hard"
STREAMS_PER_TOKEN = 2
CREDITS = ("12.5", "3.25", "0.125", "48", "7.75", "0.1", "0.2", "1.000001", "5", "2.5")


def reader_token(client: str) -> str:
    return f"reader-of-{client}"


def accounts(client: str) -> tuple[str, str, str]:
    """The client's query account, and its hard-limit and pay-as-you-go contract accounts."""
    return f"{client}-q", f"{client}-hard", f"{client}-payg"


def _files(env: Namespace) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    period = {
        "type": "explicit",
        "start": (TODAY - timedelta(days=10)).date().isoformat(),
        "end": (TODAY + timedelta(days=10)).date().isoformat(),
    }
    contracts = {
        "plans": {"custom": {"max_allotment_credits": "200000"}},
        "accounts": {
            account: {
                "allotment_credits": "10",
                "period": period,
                "payg_rate": "0.5",
                "hard_limit": account.endswith("-hard"),
            }
            for client in (*CLIENTS, "raw")
            for account in accounts(client)[1:]
        },
    }
    (ARTIFACTS / f"{env.name}-contracts.yaml").write_text(json.dumps(contracts))
    tokens = [
        {
            "name": f"reader-{client}",
            "sha256": hashlib.sha256(reader_token(client).encode()).hexdigest(),
            "scopes": [f"read:{accounts(client)[0]}"],
        }
        for client in CLIENTS
    ]
    tokens.append(
        {
            "name": "streamer",
            "sha256": hashlib.sha256(STREAMER_TOKEN.encode()).hexdigest(),
            "scopes": [f"read:{accounts('raw')[1]}"],
        }
    )
    (ARTIFACTS / f"{env.name}-tokens.yaml").write_text(json.dumps({"tokens": tokens}))
    env.extra["CREDITFLOW_CONTRACTS_FILE"] = str(ARTIFACTS / f"{env.name}-contracts.yaml")
    env.extra["CREDITFLOW_TOKENS_FILE"] = str(ARTIFACTS / f"{env.name}-tokens.yaml")
    env.extra["CREDITFLOW_SSE_STREAMS_PER_TOKEN"] = str(STREAMS_PER_TOKEN)


@dataclass
class Stack:
    env: Namespace
    api: ApiProcess
    http: httpx.AsyncClient

    async def get(self, path: str, token: str = ADMIN_TOKEN, **params: str) -> dict[str, Any]:
        response = await self.http.get(path, params=params, headers=auth(token))
        assert response.status_code == 200, response.text
        return response.json()

    async def usage(self, account: str, **params: str) -> dict[str, Any]:
        return await self.get(f"/v1/accounts/{account}/usage", **params)

    async def total_calls(self, account: str) -> int:
        wide = {
            "from": (TODAY - timedelta(days=30)).isoformat(),
            "to": (TODAY + timedelta(days=2)).isoformat(),
        }
        response = await self.http.get(
            f"/v1/accounts/{account}/usage", params={**wide, "tz": "UTC"}, headers=auth()
        )
        return response.json()["total"]["calls"] if response.status_code == 200 else -1

    async def used(self, account: str) -> str | None:
        response = await self.http.get(f"/v1/accounts/{account}/access", headers=auth())
        return response.json()["used"] if response.status_code == 200 else None


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    # make test installs them first; this makes a direct pytest run work too (cached, quick).
    await asyncio.to_thread(subprocess.run, [str(ROOT / "scripts" / "openmeter-sdks")], check=True)
    shutil.copy(CLIENTS_DIR / "sdk_js.mjs", SDK_DIR / "js" / "sdk_js.mjs")
    env = new_env("openmeter")
    _files(env)
    worker = WorkerProcess(env).start()
    api = ApiProcess(env).start()
    try:
        await worker.wait_assigned()
        await api.ready()
        async with httpx.AsyncClient(base_url=api.url, timeout=15) as http:
            await wait_until(
                lambda: _ok(http, f"/v1/accounts/{accounts('raw')[1]}/access"), timeout=30
            )
            yield Stack(env, api, http)
    finally:
        api.stop()
        worker.stop()


async def _ok(http: httpx.AsyncClient, path: str) -> bool:
    return (await http.get(path, headers=auth())).status_code == 200


async def drive(stack: Stack, client: str, *steps: tuple[Any, ...]) -> list[Any]:
    """Run steps (``(action, *args)``) through the client's SDK driver; their results."""
    spec = {
        "url": stack.api.url,
        "token": ADMIN_TOKEN,
        "steps": [{"do": step[0], "args": list(step[1:])} for step in steps],
    }
    if client == "js":
        command = ["node", str(SDK_DIR / "js" / "sdk_js.mjs")]
    else:
        command = [
            str(SDK_DIR / f"py-{client}" / "bin" / "python"),
            str(CLIENTS_DIR / f"sdk_{client}.py"),
        ]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=command[1].rpartition("/")[0],
    )
    out, err = await asyncio.wait_for(process.communicate(json.dumps(spec).encode()), 120)
    assert process.returncode == 0, f"{client} driver failed:\n{err.decode()[-4000:]}"
    return json.loads(out)


# ------------------------------------------------------------------ data and expectations


def cloud_event(
    client: str, account: str, index: int, credits: str, ago: timedelta
) -> dict[str, Any]:
    data: dict[str, Any] = {"credits": credits, "app_id": ("bot", "search")[index % 2]}
    if index % 3 == 0:
        data["calls"] = 2
    return {
        "id": f"{client}-{account}-{index}",
        "source": f"tests/{client}",
        "specversion": "1.0",
        "type": "llm.call",
        "subject": account,
        "time": (NOW - ago).isoformat(),
        "data": data,
    }


def history(client: str, account: str) -> list[dict[str, Any]]:
    """Ten events over the last three days, two apps, one of them of two calls in three."""
    return [
        cloud_event(client, account, i, CREDITS[i], timedelta(minutes=433 * i + 1))
        for i in range(len(CREDITS))
    ]


def calls_of(events: list[dict[str, Any]]) -> int:
    return sum(event["data"].get("calls", 1) for event in events)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


WINDOWS = {None: "none", "HOUR": "hour", "DAY": "day", "MONTH": "month"}


def expected_rows(query: dict[str, Any], account: str, answer: dict[str, Any]) -> list[tuple]:
    """The rows an OpenMeter query must return, regrouped from a /v1 usage answer."""
    measure = "credits" if query["meter"] == "credits" else "calls"
    by_app = "app_id" in query.get("groupBy", [])
    subject = account if query.get("subject") else None
    wanted = (query.get("filterGroupBy") or {}).get("app_id")
    if query.get("windowSize") is None:
        windows = [(answer["from"], answer["to"], answer["apps"])]
    else:
        windows = [(p["start"], p["end"], p["apps"]) for p in answer["series"]]
    rows = []
    for start, end, apps in windows:
        groups: dict[str | None, Decimal] = {}
        for app in apps:
            if wanted is not None and app["app_id"] != wanted:
                continue
            key = app["app_id"] if by_app else None
            groups[key] = groups.get(key, Decimal(0)) + Decimal(str(app[measure]))
        for key, value in groups.items():
            rows.append((instant(start), instant(end), subject, key, value))
    return sorted(rows, key=lambda r: (r[0], r[3] or ""))


def client_rows(result: dict[str, Any]) -> list[tuple]:
    assert "rows" in result, result
    return sorted(
        (
            (
                instant(row["windowStart"]),
                instant(row["windowEnd"]),
                row["subject"],
                row["groupBy"].get("app_id"),
                Decimal(row["value"]),
            )
            for row in result["rows"]
        ),
        key=lambda r: (r[0], r[3] or ""),
    )


def csv_rows(text: str) -> list[tuple]:
    return sorted(
        (
            (
                instant(row["window_start"]),
                instant(row["window_end"]),
                row.get("subject") or None,
                row.get("app_id") or None,
                Decimal(row["value"]),
            )
            for row in csv.DictReader(io.StringIO(text))
        ),
        key=lambda r: (r[0], r[3] or ""),
    )


def queries(client: str, account: str) -> list[dict[str, Any]]:
    seoul_today = datetime.combine(NOW.astimezone(SEOUL).date(), datetime.min.time(), SEOUL)
    hour = NOW.replace(minute=0)
    seoul_range = {
        "from": (seoul_today - timedelta(days=3)).isoformat(),
        "to": (seoul_today + timedelta(days=2)).isoformat(),
        "windowTimeZone": "Asia/Seoul",
    }
    utc_range = {
        "from": (TODAY - timedelta(days=3)).isoformat(),
        "to": (TODAY + timedelta(days=2)).isoformat(),
    }
    return [
        # A token that reads only this account, no subject: its account, summed (subject null).
        {"id": "reader_total", "meter": "credits", **utc_range, "token": reader_token(client)},
        {"id": "seoul_total", "meter": "calls", **seoul_range, "subject": [account]},
        {
            "id": "hourly_utc",
            "meter": "credits",
            "from": (hour - timedelta(hours=24)).isoformat(),
            "to": (hour + timedelta(hours=2)).isoformat(),
            "windowSize": "HOUR",
            "windowTimeZone": "UTC",
            "subject": [account],
            "groupBy": ["app_id"],
        },
        {
            "id": "daily_seoul_calls",
            "meter": "calls",
            **seoul_range,
            "windowSize": "DAY",
            "subject": [account],
            "groupBy": ["app_id"],
        },
        {
            "id": "filtered_seoul",
            "meter": "credits",
            **seoul_range,
            "windowSize": "DAY",
            "subject": [account],
            "filterGroupBy": {"app_id": "bot"},
        },
        {
            "id": "post_filtered",
            "meter": "credits",
            **utc_range,
            "windowSize": "DAY",
            "windowTimeZone": "UTC",
            "subject": [account],
            "filterGroupBy": {"app_id": "search"},
            "post": True,
        },
        {
            "id": "csv_daily",
            "meter": "calls",
            **utc_range,
            "windowSize": "DAY",
            "windowTimeZone": "UTC",
            "subject": [account],
            "groupBy": ["app_id"],
            "csv": True,
        },
        {"id": "all_time", "meter": "credits", "subject": [account]},
        {"id": "minute", "meter": "credits", "windowSize": "MINUTE", "subject": [account]},
    ]


async def check_query(stack: Stack, account: str, query: dict[str, Any], result: Any) -> None:
    if result.get("unsupported"):
        return
    if query["id"] == "minute":
        assert result["error"]["status"] == 400
        assert result["error"]["content_type"] == "application/problem+json"
        return
    if query["id"] == "all_time":
        events = await stack.usage(
            account, **{"from": "2020-01-01", "to": (TODAY + timedelta(days=2)).date().isoformat()}
        )
        [(_, _, subject, _, value)] = client_rows(result)
        assert (subject, value) == (account, Decimal(events["total"]["credits"]))
        return
    answer = await stack.usage(
        account,
        **{"from": query["from"], "to": query["to"]},
        tz=query.get("windowTimeZone", "UTC"),
        window=WINDOWS[query.get("windowSize")],
        group_by="app",
    )
    expected = expected_rows(query, account, answer)
    assert expected, f"{query['id']}: the range holds no usage, the check would be empty"
    got = csv_rows(result["csv"]) if query.get("csv") else client_rows(result)
    assert got == expected, query["id"]


def check_value(value: dict[str, Any], access: dict[str, Any], allotment: str = "10") -> None:
    """An OpenMeter entitlement value equals creditflow's access answer."""
    assert value["hasAccess"] is access["has_access"]
    assert Decimal(str(value["usage"])) == Decimal(access["used"])
    assert Decimal(str(value["balance"])) == Decimal(access["remaining"])
    overage = max(Decimal(0), Decimal(access["used"]) - Decimal(allotment))
    assert Decimal(str(value["overage"])) == overage
    assert Decimal(str(value["totalAvailableGrantAmount"])) == Decimal(allotment)


# ------------------------------------------------------------------ the three clients


@pytest.mark.parametrize("client", CLIENTS)
async def test_sdk_against_the_real_stack(stack: Stack, client: str) -> None:
    account, hard, payg = accounts(client)
    events = history(client, account)
    single, batch = events[0], events[1:]
    if client == "js":
        # The JavaScript SDK fills id, source, specversion and time itself.
        single = {
            "type": "llm.call",
            "subject": account,
            "data": {"credits": "12.5", "app_id": "bot"},
        }
    sentinel = cloud_event(client, account, 99, "0.5", timedelta(minutes=2))
    first_use = [
        cloud_event(client, a, 50 + i, "2", timedelta(minutes=3))
        for a in (hard, payg)
        for i in range(2)
    ]
    await drive(
        stack,
        client,
        ("ingest_one", single),
        ("ingest_many", batch),
        ("ingest_many", batch),  # resent whole, as the SDK's retries would: counted once
        ("ingest_one", sentinel),  # stored after the resend: once it counts, the resend has too
        ("ingest_many", first_use),
    )
    expected_calls = calls_of([single, *batch, sentinel])

    async def applied() -> bool:
        return await stack.total_calls(account) == expected_calls and all(
            [await stack.used(a) == "4" for a in (hard, payg)]
        )

    await wait_until(applied, timeout=30)

    plan = queries(client, account)
    results = await drive(
        stack,
        client,
        ("meters",),
        *(("query", q, q["token"]) if "token" in q else ("query", q) for q in plan),
        ("values", hard),
        ("values", payg),
    )
    assert sorted(results[0]) == ["calls", "credits"]
    for query, result in zip(plan, results[1 : 1 + len(plan)], strict=True):
        await check_query(stack, account, query, result)
    before = results[1 + len(plan) :]
    for account_id, values in zip((hard, payg), before, strict=True):
        access = await stack.get(f"/v1/accounts/{account_id}/access")
        assert access["has_access"] is True and access["used"] == "4"
        for value in values.values():
            check_value(value, access)

    # Past the allotment: the hard-limit contract loses access, the pay-as-you-go one keeps it.
    top_up = [cloud_event(client, a, 60, "7", timedelta(minutes=1)) for a in (hard, payg)]
    await drive(stack, client, ("ingest_many", top_up))
    await wait_until(lambda: _both_used(stack, (hard, payg), "11"), timeout=30)
    hard_values, payg_values, token = await drive(
        stack, client, ("values", hard), ("values", payg), ("portal_create", account)
    )
    for account_id, values, has_access in ((hard, hard_values, False), (payg, payg_values, True)):
        access = await stack.get(f"/v1/accounts/{account_id}/access")
        assert access["has_access"] is has_access and access["remaining"] == "0"
        for value in values.values():
            check_value(value, access)
            assert value["hasAccess"] is has_access

    # A portal token reads its account's meters, and nothing of another account.
    secret = token["token"]
    portal, other, listed = await drive(
        stack,
        client,
        ("portal_query", secret, "credits"),
        ("query", {"meter": "credits", "subject": [hard]}, secret),
        ("portal_list",),
    )
    [(_, _, subject, _, value)] = client_rows(portal)
    wide = {"from": "2020-01-01", "to": (TODAY + timedelta(days=2)).date().isoformat()}
    total = await stack.usage(account, **wide)
    assert (subject, value) == (account, Decimal(total["total"]["credits"]))
    assert other["error"]["status"] == 403
    assert token["id"] in listed
    # The billing page's reads: its own account yes, another no.
    assert (await stack.get(f"/v1/accounts/{account}/usage", secret, **wide))["total"] == total[
        "total"
    ]
    refused = await stack.http.get(f"/v1/accounts/{hard}/usage", params=wide, headers=auth(secret))
    assert refused.status_code == 403
    _, revoked = await drive(
        stack, client, ("portal_invalidate", token["id"]), ("portal_query", secret, "credits")
    )
    assert revoked["error"]["status"] == 401


async def _both_used(stack: Stack, names: tuple[str, ...], used: str) -> bool:
    return all([await stack.used(name) == used for name in names])


# ------------------------------------------------------------------ the HTTP surface itself


def cloud_body(account: str, event_id: str, credits: str, **data: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "source": "tests/raw",
        "specversion": "1.0",
        "type": "llm.call",
        "subject": account,
        "time": (NOW - timedelta(minutes=5)).isoformat(),
        "data": {"credits": credits, **data},
    }


async def post_events(
    stack: Stack, body: Any, token: str = ADMIN_TOKEN, **headers: str
) -> httpx.Response:
    return await stack.http.post(
        "/api/v1/events",
        content=body if isinstance(body, bytes) else json.dumps(body).encode(),
        headers={"content-type": "application/cloudevents-batch+json", **auth(token), **headers},
    )


@pytest.mark.parametrize(
    ("path", "status", "fragment"),
    [
        ("/api/v1/meters/credits/query?windowSize=MINUTE", 400, "HOUR, DAY or MONTH"),
        ("/api/v1/meters/credits/query?groupBy=model", 400, "subject and app_id"),
        ("/api/v1/meters/credits/query?from=2026-01-01T00:05:00Z", 400, "15-minute"),
        ("/api/v1/meters/credits/query?subject=bad%20id", 400, "not a valid account id"),
        ("/api/v1/meters/tokens/query", 404, "credits and calls"),
        ("/api/v1/customers/raw-hard/entitlements/seats/value", 404, "'credits'"),
        ("/api/v1/features", 404, "docs/openmeter.md"),
    ],
)
async def test_errors_are_problem_details(
    stack: Stack, path: str, status: int, fragment: str
) -> None:
    response = await stack.http.get(path, headers=auth())
    assert response.status_code == status, response.text
    # Exactly this type: the JavaScript SDK compares it without parameters.
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    assert body["status"] == status and fragment in body["detail"]


async def test_authentication_and_scopes_as_problems(stack: Stack) -> None:
    missing = await stack.http.get("/api/v1/meters")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.headers["content-type"] == "application/problem+json"
    reader = reader_token("b236")
    other = await stack.http.get("/api/v1/meters/credits/query?subject=raw-q", headers=auth(reader))
    assert other.status_code == 403
    refused = await post_events(stack, [cloud_body("raw-q", "w-1", "1")], token=reader)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["reason"] == "forbidden_account"


async def test_ingest_is_all_or_nothing_and_exact(stack: Stack) -> None:
    account = "raw-q"
    mixed = [cloud_body(account, "m-1", "1"), cloud_body("bad subject", "m-2", "1")]
    refused = await post_events(stack, mixed)
    assert refused.status_code == 400, refused.text
    problem = refused.json()
    assert problem["errors"] == [
        {"index": 1, "reason": "invalid_event", "detail": problem["errors"][0]["detail"]}
    ]
    assert problem["errors"][0]["detail"].startswith("subject:")
    unsupported = await post_events(stack, b"{}", **{"content-type": "text/plain"})
    assert unsupported.status_code == 415
    # JSON numbers go to Kafka as their text: 0.1 + 0.2 is 0.3, not 0.30000000000000004.
    exact = (
        b'[{"id":"x-1","source":"s","specversion":"1.0","type":"t","subject":"raw-q",'
        b'"data":{"credits":0.1,"app_id":"exact"}},'
        b'{"id":"x-2","source":"s","specversion":"1.0","type":"t","subject":"raw-q",'
        b'"data":{"credits":0.2,"app_id":"exact"}}]'
    )
    stored = await post_events(stack, exact)
    assert stored.status_code == 204 and stored.content == b""
    await wait_until(lambda: _calls_are(stack, account, 2), timeout=30)
    # Only the two exact events counted: nothing of the refused batch was stored.
    raw = await stack.http.get(
        "/api/v1/meters/credits/query",
        params={"subject": account, "groupBy": "app_id"},
        headers=auth(),
    )
    assert raw.status_code == 200
    assert b'"value":0.3,' in raw.content
    assert raw.headers["x-creditflow-as-of"]


async def _calls_are(stack: Stack, account: str, calls: int) -> bool:
    return await stack.total_calls(account) == calls


async def test_hard_limit_contract_field_and_the_access_stream(stack: Stack) -> None:
    account = "raw-hard"
    path = f"/v1/accounts/{account}/contract"
    contract = await stack.get(path)
    assert contract["hard_limit"] is True
    body = {k: v for k, v in contract.items() if k not in ("account_id", "version")}
    bad = await stack.http.put(path, json={**body, "hard_limit": "yes"}, headers=auth())
    assert bad.status_code == 400 and "hard_limit" in bad.json()["error"]["message"]
    billing = await stack.get(f"/v1/accounts/{account}/billing")
    assert billing["plan"]["hard_limit"] is True
    access = await stack.get(f"/v1/accounts/{account}/access")
    access.pop("as_of")  # moves with each heartbeat
    assert access == {
        "has_access": True,
        "remaining": "10",
        "used": "0",
        "allotment": "10",
        "hard_limit": True,
    }
    async with stack.http.stream(
        "GET", f"/v1/accounts/{account}/access/stream", headers=auth(), timeout=30
    ) as stream:
        lines = stream.aiter_lines()
        first = await _next_access(lines)
        assert first["has_access"] is True
        stored = await post_events(stack, [cloud_body(account, "h-1", "10")])
        assert stored.status_code == 204
        flipped = await _next_access(lines)
        assert (flipped["has_access"], flipped["used"], flipped["remaining"]) == (False, "10", "0")
        # Turning the contract into pay-as-you-go flips it back, with no new usage.
        changed = await stack.http.put(path, json={**body, "hard_limit": False}, headers=auth())
        assert changed.status_code == 200 and changed.json()["hard_limit"] is False
        back = await _next_access(lines)
        assert (back["has_access"], back["hard_limit"]) == (True, False)


async def _next_access(lines: Any) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        event = None
        async for line in lines:
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: ") and event == "access":
                return json.loads(line[len("data: ") :])
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(read(), 30)


async def test_access_streams_share_the_stream_limits(stack: Stack) -> None:
    account = accounts("raw")[1]
    access = f"/v1/accounts/{account}/access/stream"
    usage = f"/v1/accounts/{account}/usage/stream"
    async with contextlib.AsyncExitStack() as streams:
        for _ in range(STREAMS_PER_TOKEN):
            opened = await streams.enter_async_context(
                stack.http.stream("GET", access, headers=auth(STREAMER_TOKEN), timeout=30)
            )
            assert opened.status_code == 200
        # Bounded: were access streams unlimited, this would be a stream that never ends.
        for path in (access, usage):
            over = await asyncio.wait_for(stack.http.get(path, headers=auth(STREAMER_TOKEN)), 10)
            assert over.status_code == 429, over.text
            assert over.json()["error"]["code"] == "too_many_streams"

    async def reopened() -> bool:
        async with stack.http.stream("GET", access, headers=auth(STREAMER_TOKEN)) as again:
            return again.status_code == 200

    # Closed streams give their slots back (the server notices the disconnects).
    await wait_until(reopened, timeout=15, interval=0.3)


async def test_portal_tokens_work_on_every_process_and_revoke_everywhere(stack: Stack) -> None:
    created = await stack.http.post(
        "/api/v1/portal/tokens",
        json={"subject": "raw-payg", "allowedMeterSlugs": ["calls"]},
        headers=auth(),
    )
    assert created.status_code == 200, created.text
    token = created.json()
    assert token["allowedMeterSlugs"] == ["calls"] and token["expired"] is False
    secret = token["token"]
    # A portal token cannot manage tokens, and one limited to calls cannot query credits.
    assert (await stack.http.get("/api/v1/portal/tokens", headers=auth(secret))).status_code == 403
    credits = await stack.http.get("/api/v1/portal/meters/credits/query", headers=auth(secret))
    assert credits.status_code == 403
    assert (
        await stack.http.get("/api/v1/portal/meters/calls/query", headers=auth(secret))
    ).status_code == 200
    # The billing page needs both meters: this token is not enough for it.
    assert (await stack.http.get("/v1/whoami", headers=auth(secret))).json()["accounts"] == []

    # Another API process (fresh: it replays the config topic, as after a restart).
    app = create_app(stack.env.settings())
    await app.state.services.accounts()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://second.test") as second:
        query = "/api/v1/portal/meters/calls/query"
        assert (await second.get(query, headers=auth(secret))).status_code == 200
        listed = await stack.http.get(
            "/api/v1/portal/tokens", params={"limit": 100}, headers=auth()
        )
        assert token["id"] in [t["id"] for t in listed.json()]
        assert all("token" not in t for t in listed.json())
        revoke = await stack.http.post(
            "/api/v1/portal/tokens/invalidate", json={"subject": "raw-payg"}, headers=auth()
        )
        assert revoke.status_code == 204
        assert (await stack.http.get(query, headers=auth(secret))).status_code == 401

        async def refused_there_too() -> bool:
            return (await second.get(query, headers=auth(secret))).status_code == 401

        await wait_until(refused_there_too, timeout=10)
    await app.state.services.close()


async def test_access_check_errors_come_from_the_full_stack(stack: Stack) -> None:
    path = "/v1/accounts/{}/access"
    assert (await stack.http.get(path.format("raw-payg"))).status_code == 401
    other = await stack.http.get(path.format("raw-payg"), headers=auth(reader_token("b236")))
    assert other.status_code == 403 and other.json()["error"]["code"] == "forbidden"
    missing = await stack.http.get(path.format("no-such-account"), headers=auth())
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "no_contract"
    invalid = await stack.http.get(path.format("bad%20id"), headers=auth())
    assert invalid.status_code == 400
