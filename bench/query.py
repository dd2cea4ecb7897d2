"""Query latency of one repeated 31-day, per-app, daily-series query at 50 clients (wrk).

Every request is the same question, so this measures an answer-cache hit; bench/scale.py
measures uncached queries over a large history.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import redis

from bench import wrk
from bench.load import APPS
from bench.load import producer as kafka_producer
from bench.namespace import Namespace, Process, creditflow
from config.topics import ensure_topics

TOKEN = "bench-admin-token"
DAYS = 31


TZ = "Asia/Seoul"


def _first_day() -> date:
    """First local date of the 31-day range that ends tomorrow (Seoul)."""
    return datetime.now(ZoneInfo(TZ)).date() - timedelta(days=DAYS - 1)


async def _seed(namespace: Namespace) -> int:
    """One event per app in every 15-minute bucket of the queried 31 days, up to now."""
    settings = namespace.settings()
    await ensure_topics(settings)
    producer = kafka_producer(settings, linger_ms=20)
    await producer.start()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = datetime.combine(_first_day(), datetime.min.time(), ZoneInfo(TZ)).astimezone(UTC)
    events = []
    moment = start
    while moment < now:
        for app in APPS:
            events.append(
                '{"event_id":"q-%s-%s","account_id":"query","app_id":"%s","occurred_at":"%s","credits":"1.5"}'
                % (app, moment.strftime("%Y%m%d%H%M"), app, moment.isoformat())
            )
        moment += timedelta(minutes=15)
    futures = [
        await producer.send(
            settings.calls_topic, ("[" + ",".join(events[i : i + 500]) + "]").encode(), key=b"query"
        )
        for i in range(0, len(events), 500)
    ]
    await asyncio.gather(*futures)
    await producer.stop()
    return len(events)


def run_query(
    namespace: Namespace, clients: int, seconds: int, api_workers: int, port: int
) -> dict[str, Any]:
    """Seed, then hammer the usage API with wrk; also Redis bytes per (account, app, day)."""
    binary = wrk.binary()
    seeded = asyncio.run(_seed(namespace))
    worker = Process(creditflow("worker"), namespace, "query-worker")
    api = Process(
        creditflow("api", "--port", str(port), "--workers", str(api_workers)),
        namespace,
        "query-api",
    )
    try:
        first = _first_day()
        query = f"from={first.isoformat()}&to={(first + timedelta(days=DAYS)).isoformat()}&tz={TZ}&window=day&group_by=app"
        url = f"http://127.0.0.1:{port}/v1/accounts/query/usage?{query}"
        deadline = time.monotonic() + 180
        answer: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                answer = httpx.get(
                    url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
                ).json()
                if answer.get("total", {}).get("calls") == seeded:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError(f"query account not fully applied: {answer.get('total')}")
        # Warm-up (discarded): every API worker process has served requests before timing.
        subprocess.run(
            [binary, "-t1", f"-c{clients}", "-d3s", "-H", f"Authorization: Bearer {TOKEN}", url],
            capture_output=True,
            check=True,
        )
        output = subprocess.run(
            wrk.command(clients, seconds, "-H", f"Authorization: Bearer {TOKEN}", url),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        requests = wrk.requests(output)
        client = redis.Redis.from_url(namespace.env["REDIS_URL"])
        view_bytes = sum(
            int(client.memory_usage(key, samples=0) or 0)
            for key in client.scan_iter(match="cf:{query}:*")
        )
    finally:
        api.stop()
        worker.stop()
    return {
        "clients": clients,
        "seconds": seconds,
        "api_workers": api_workers,
        "series_points": len(answer["series"]),
        "apps": len(answer["apps"]),
        "requests": requests,
        "requests_per_second": round(requests / seconds),
        **wrk.percentiles(output),
        "redis_bytes_per_account_app_day": round(view_bytes / (len(APPS) * DAYS)),
    }
