"""Freshness (published -> visible in the usage API) and alert latency (published -> webhook).

A steady background load flows through one worker while probes are timed end to end:
- freshness probes: single events of a probe account, each followed by polling the usage API
  (every 5 ms) until its total includes the probe;
- alert probes: one event per alert account that crosses its 50% threshold, timed until the
  webhook receiver (in this process) gets the signed POST.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from aiokafka import AIOKafkaProducer

from bench.load import producer as kafka_producer
from bench.load import ready_topics, steady
from bench.namespace import RESULTS, Namespace, Process, creditflow, free_port
from config.accounts import publish_config, webhooks_key

TOKEN = "bench-admin-token"
WARMUP_S = 3.0
"""Seconds of load before the first probe."""


@dataclass
class Samples:
    """Latencies in milliseconds, with when they were taken (seconds into the run)."""

    values: list[float] = field(default_factory=list)
    at: list[float] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.values)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def summary(self) -> dict[str, Any]:
        return {
            "samples": len(self.values),
            "p50_ms": round(self.percentile(50), 1),
            "p95_ms": round(self.percentile(95), 1),
            "p99_ms": round(self.percentile(99), 1),
            "max_ms": round(max(self.values, default=float("nan")), 1),
        }


def _contracts(accounts: list[str]) -> str:
    body = {
        "plans": {"custom": {"max_allotment_credits": "200000"}},
        "accounts": {
            account: {
                "plan": "custom",
                "allotment_credits": "100",
                "period": {"type": "monthly", "anchor": "2020-01-01"},
                "time_zone": "UTC",
                "payg_rate": "0.01",
                "currency": "USD",
                "alert_thresholds": [50],
            }
            for account in accounts
        },
    }
    path = RESULTS / "bench-contracts.json"
    path.write_text(json.dumps(body))
    return str(path)


class _Receiver:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.runner: web.AppRunner | None = None

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()

    async def _hook(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        self.arrived.setdefault(request.headers["Idempotency-Key"], arrived)
        return web.Response(status=200)


async def run_latency(
    namespace: Namespace, rate: float, batch: int, seconds: float, alert_accounts: int, port: int
) -> dict[str, Any]:
    """Run the load with both kinds of probes; return summaries and the freshness series."""
    alerting = [f"alert-{i:03d}" for i in range(alert_accounts)]
    namespace.extra["CREDITFLOW_CONTRACTS_FILE"] = _contracts(alerting)
    namespace.extra["CREDITFLOW_WEBHOOK_ALLOWED_NETWORKS"] = "127.0.0.0/8"  # the local receiver
    settings = namespace.settings()
    await ready_topics(settings)
    receiver = _Receiver()
    await receiver.start(port)
    hooks = {
        "endpoints": [{"id": "bench", "url": f"http://127.0.0.1:{port}/hook", "secret": "x" * 32}]
    }
    await publish_config(
        settings, [(webhooks_key(a), json.dumps(hooks).encode()) for a in alerting]
    )
    api_port = free_port()  # never port + 1: another process may hold it (the API then dies)
    worker = Process(creditflow("worker"), namespace, "latency-worker")
    api = Process(creditflow("api", "--port", str(api_port)), namespace, "latency-api")
    freshness, alerts = Samples(), Samples()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as client:
            await _wait_ready(client, [worker, api])
            producer = kafka_producer(settings)
            await producer.start()
            load = asyncio.ensure_future(steady(settings, rate, batch, seconds))
            # Probes are timed once the load has run a while: the worker's first fetches
            # (connections, caches, the first commit) are a start-up cost, not freshness.
            await asyncio.sleep(WARMUP_S)
            started, window = time.monotonic(), seconds - WARMUP_S
            probes = asyncio.ensure_future(
                _freshness_probes(
                    client, producer, settings.calls_topic, window, started, freshness
                )
            )
            crossings = asyncio.ensure_future(
                _alert_probes(
                    producer, settings.calls_topic, alerting, window, started, receiver, alerts
                )
            )
            sent = await load
            await probes
            await crossings
            await producer.stop()
        peak_rss = worker.peak_rss_bytes()
    finally:
        api.stop()
        worker.stop()
        if receiver.runner is not None:
            await receiver.runner.cleanup()
    return {
        "offered_events_per_second": rate,
        "load_events": sent,
        "batch": batch,
        "warmup_seconds": WARMUP_S,
        "freshness": freshness.summary(),
        "freshness_series": list(zip(freshness.at, freshness.values, strict=True)),
        "alert_latency": alerts.summary(),
        "alert_series": list(zip(alerts.at, alerts.values, strict=True)),
        "worker_peak_rss_bytes": peak_rss,
    }


async def _wait_ready(client: httpx.AsyncClient, processes: list[Process]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for process in processes:
            if process.proc.poll() is not None:
                raise RuntimeError(
                    f"{process.log.name} exited with {process.proc.returncode}: "
                    f"{process.last_line()}"
                )
        try:
            if (await client.get("/healthz")).json().get("status") == "ok":
                return
        except (httpx.HTTPError, ValueError):
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(
        "the worker or API did not become ready in 90 s: "
        + "; ".join(f"{p.log.name}: {p.last_line()}" for p in processes)
    )


def _event(event_id: str, account: str, credits: str) -> bytes:
    occurred = (datetime.now(UTC) - timedelta(milliseconds=5)).isoformat(timespec="milliseconds")
    return json.dumps(
        {
            "event_id": event_id,
            "account_id": account,
            "app_id": "probe",
            "occurred_at": occurred,
            "credits": credits,
        }
    ).encode()


async def _freshness_probes(
    client: httpx.AsyncClient,
    producer: AIOKafkaProducer,
    topic: str,
    seconds: float,
    started: float,
    samples: Samples,
) -> None:
    day = datetime.now(UTC).date()
    params = {
        "from": (day - timedelta(days=1)).isoformat(),
        "to": (day + timedelta(days=2)).isoformat(),
        "tz": "UTC",
        "group_by": "none",
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    count = 0
    while time.monotonic() - started < seconds - 1:
        count += 1
        sent = time.monotonic()
        await producer.send_and_wait(topic, _event(f"probe-{count}", "probe", "1"), key=b"probe")
        while True:
            answer = (
                await client.get("/v1/accounts/probe/usage", params=params, headers=headers)
            ).json()
            if answer["total"]["calls"] >= count:
                break
            await asyncio.sleep(0.005)
        samples.values.append((time.monotonic() - sent) * 1000)
        samples.at.append(sent - started)
        await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - sent)))


async def _alert_probes(
    producer: AIOKafkaProducer,
    topic: str,
    accounts: list[str],
    seconds: float,
    started: float,
    receiver: _Receiver,
    samples: Samples,
) -> None:
    gap = max(0.05, (seconds - 4) / max(1, len(accounts)))
    sent_at: dict[str, float] = {}
    for account in accounts:
        if time.monotonic() - started > seconds - 3:
            break
        # Monthly periods anchored on a 1st (UTC) start on the first of this month.
        period = datetime.now(UTC).date().replace(day=1).isoformat()
        alert_id = f"{account}:{period}:50"
        sent_at[alert_id] = time.monotonic()
        await producer.send_and_wait(
            topic, _event(f"cross-{account}", account, "60"), key=account.encode()
        )
        await asyncio.sleep(gap)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not set(sent_at) <= set(receiver.arrived):
        await asyncio.sleep(0.05)
    for alert_id, sent in sent_at.items():
        if alert_id in receiver.arrived:
            samples.values.append((receiver.arrived[alert_id] - sent) * 1000)
            samples.at.append(sent - started)


def plot_freshness(
    series: list[tuple[float, float]], target_ms: float, path: Path, title: str
) -> None:
    """PNG of freshness over the run (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 3.2), dpi=110)
    if series:
        xs, ys = zip(*series, strict=True)
        axis.plot(xs, ys, ".", markersize=3, label="published → visible in the usage API")
    axis.axhline(
        target_ms,
        color="tab:red",
        linewidth=1,
        linestyle="--",
        label=f"target p99 {target_ms:.0f} ms",
    )
    axis.set_xlabel("seconds into the run")
    axis.set_ylabel("ms")
    axis.set_title(title, fontsize=10)
    axis.legend(loc="upper right", fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
