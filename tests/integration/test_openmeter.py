"""OpenMeter's own SDKs, unchanged, against the real stack (a worker and an API process).

Python SDK 1.0.0b236 and 1.0.0b188 run in virtual environments of their own and the
JavaScript SDK runs with node (``scripts/openmeter-sdks`` installs them under .local/sdk); each
is driven through openmeter_clients/ as an application would call it. Every number a client
reads is compared with creditflow's own ``/v1`` answer for the same question.
"""

from __future__ import annotations

import asyncio
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
    (ARTIFACTS / f"{env.name}-tokens.yaml").write_text(json.dumps({"tokens": tokens}))
    env.extra["CREDITFLOW_CONTRACTS_FILE"] = str(ARTIFACTS / f"{env.name}-contracts.yaml")
    env.extra["CREDITFLOW_TOKENS_FILE"] = str(ARTIFACTS / f"{env.name}-tokens.yaml")


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
