"""Access-check latency: ``GET /v1/accounts/{a}/access`` at a fixed 2,000 requests/s, 50 clients.

1,000 accounts with contracts (half of them hard-limit) and twelve days of usage over three
apps each; wrk (``bench/access.lua``) paces the requests to a fixed rate over random accounts,
so every request reads an account that was not just read (the view's 20 ms sharing window
rarely applies: each request is a Redis round trip). Beside it, at the same rate and on the
same data, ``GET /v1/accounts/{a}/billing``: the same "used this period" through the framework.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench import wrk
from bench.load import producer as kafka_producer
from bench.namespace import RESULTS, ROOT, Namespace, Process, creditflow
from config.topics import ensure_topics

TOKEN = "bench-admin-token"
APPS = ("support-bot", "doc-search", "summarizer")
SCRIPT = ROOT / "bench" / "access.lua"


def _contracts(namespace: Namespace, accounts: int) -> str:
    anchor = (datetime.now(UTC) - timedelta(days=20)).date()
    body = {
        "plans": {"custom": {"max_allotment_credits": "200000"}},
        "accounts": {
            f"acct-{i}": {
                "allotment_credits": "5000",
                "period": {"type": "monthly", "anchor": anchor.replace(day=1).isoformat()},
                "payg_rate": "0.01",
                "hard_limit": i % 2 == 0,
            }
            for i in range(1, accounts + 1)
        },
    }
    path = RESULTS / f"access-{namespace.tag}-contracts.yaml"
    path.write_text(json.dumps(body))
    return str(path)


async def _seed(namespace: Namespace, accounts: int, per_account: int) -> int:
    """``per_account`` events per account over the last twelve days, batch records of 200."""
    settings = namespace.settings()
    await ensure_topics(settings)
    producer = kafka_producer(settings, linger_ms=20)
    await producer.start()
    rng = random.Random(11)
    now = datetime.now(UTC)
    futures = []
    for i in range(1, accounts + 1):
        account = f"acct-{i}"
        events = [
            '{"event_id":"a%d-%d","account_id":"%s","app_id":"%s","occurred_at":"%s","credits":"%d.%02d"}'
            % (
                i,
                n,
                account,
                APPS[n % len(APPS)],
                (now - timedelta(seconds=rng.randint(60, 12 * 86400))).isoformat(),
                rng.randint(0, 20),
                rng.randint(0, 99),
            )
            for n in range(per_account)
        ]
        for start in range(0, len(events), 200):
            value = ("[" + ",".join(events[start : start + 200]) + "]").encode()
            futures.append(await producer.send(settings.calls_topic, value, key=account.encode()))
    await asyncio.gather(*futures)
    await producer.stop()
    return accounts * per_account


def _wrk(
    port: int, suffix: str, rate: float, clients: int, seconds: int, accounts: int
) -> dict[str, Any]:
    env = {
        **os.environ,
        "RATE": str(rate),
        "THREADS": "2",
        "ACCOUNTS": str(accounts),
        "PREFIX": "acct-",
        "SUFFIX": suffix,
        "TOKEN": TOKEN,
    }
    command = wrk.command(clients, seconds, "-s", str(SCRIPT))
    output = subprocess.run(
        [*command, f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True, env=env
    ).stdout
    requests = wrk.requests(output)
    return {
        "path": f"/v1/accounts/<random of {accounts}>{suffix}",
        "offered_per_second": rate,
        "requests": requests,
        "requests_per_second": round(requests / seconds),
        "non_2xx": wrk.non_2xx(output),
        **wrk.percentiles(output),
        "max_ms": wrk.max_ms(output),
        "socket_errors": wrk.socket_errors(output),
    }


def run_access(
    namespace: Namespace,
    rate: float,
    clients: int,
    seconds: int,
    accounts: int,
    port: int,
    api_workers: int = 1,
) -> dict[str, Any]:
    """Seed, start a worker and an API, then the paced access and billing runs."""
    namespace.extra["CREDITFLOW_CONTRACTS_FILE"] = _contracts(namespace, accounts)
    per_account = 12 * 12 * len(APPS) // 4
    seeded = asyncio.run(_seed(namespace, accounts, per_account))
    worker = Process(creditflow("worker"), namespace, "access-worker")
    api = Process(
        creditflow("api", "--port", str(port), "--workers", str(api_workers)),
        namespace,
        "access-api",
    )
    try:
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        wide = {
            "from": (datetime.now(UTC) - timedelta(days=13)).date().isoformat(),
            "to": (datetime.now(UTC) + timedelta(days=1)).date().isoformat(),
            "tz": "UTC",
        }
        deadline = time.monotonic() + 300
        sample = [f"acct-{i}" for i in (1, accounts // 2, accounts)]
        while time.monotonic() < deadline:
            try:
                totals = [
                    httpx.get(
                        f"{base}/v1/accounts/{a}/usage", params=wide, headers=headers, timeout=5
                    ).json()["total"]["calls"]
                    for a in sample
                ]
                if totals == [per_account] * len(sample):
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("the access accounts were not applied in time")
        probe = httpx.get(f"{base}/v1/accounts/acct-1/access", headers=headers, timeout=5).json()
        # Warm-up (discarded): every account once through the process's caches.
        _wrk(port, "/access", rate, clients, 5, accounts)
        # The machine is shared: the 1-minute load average before and after says how much.
        load_before = os.getloadavg()[0]
        access = _wrk(port, "/access", rate, clients, seconds, accounts)
        load_after = os.getloadavg()[0]
        billing = _wrk(port, "/billing", rate, clients, seconds, accounts)
    finally:
        api.stop()
        worker.stop()
    return {
        "accounts": accounts,
        "events": seeded,
        "clients": clients,
        "seconds": seconds,
        "api_workers": api_workers,
        "example": probe,
        "load_average_before_after": [round(load_before, 2), round(load_after, 2)],
        "access": access,
        "billing_baseline": billing,
    }
