"""Allotment alerts on the real stack: fired once per threshold, delivered to a signed webhook."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.integration.harness import (
    ARTIFACTS,
    BACKENDS,
    Namespace,
    WorkerProcess,
    api_client,
    auth,
    new_env,
    raw_producer,
    read_topic,
    wait_until,
)
from tests.integration.webhooks import Receiver

SECRET = "whsec-test-0123456789abcdef"
ALLOTMENT = 100


def _anchor(today: date) -> date:
    """A monthly anchor whose current period began 1 to 5 days ago (day <= 28, no clamping)."""
    for back in range(1, 6):
        start = today - timedelta(days=back)
        if start.day <= 28:
            return date(start.year - 1, start.month, start.day)
    raise AssertionError("unreachable: one of five consecutive days is <= 28")


@dataclass
class Stack:
    namespace: Namespace
    client: httpx.AsyncClient
    receiver: Receiver
    worker: WorkerProcess
    tag: str
    period_start: date
    previous_start: date

    def account(self, name: str) -> str:
        return f"{name}-{self.tag}"

    def restart_worker(self) -> None:
        self.worker = WorkerProcess(self.namespace, "restarted").start()


@pytest.fixture(scope="module", params=BACKENDS)
async def stack_with_hooks(request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    """Alerts once per view backend: one Redis, and the Redis Cluster."""
    today = datetime.now(UTC).date()
    anchor = _anchor(today)
    namespace = new_env(
        "alerts",
        request.param,
        extra={
            "CREDITFLOW_SESSION_TIMEOUT_SECONDS": "6",
            # The receiver listens on loopback, which webhooks may not reach by default.
            "CREDITFLOW_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        },
    )
    tag = namespace.name[-8:]
    accounts = {
        f"{name}-{tag}": {
            "plan": "custom",
            "allotment_credits": str(ALLOTMENT),
            "period": {"type": "monthly", "anchor": anchor.isoformat()},
            "time_zone": "UTC",
            "payg_rate": "0.5",
            "currency": "USD",
            "alert_thresholds": [50, 80, 100],
        }
        for name in ("cross", "down", "kill", "late")
    }
    ARTIFACTS.mkdir(exist_ok=True)
    contracts = ARTIFACTS / f"{namespace.name}-contracts.yaml"
    contracts.write_text(
        json.dumps({"plans": {"custom": {"max_allotment_credits": "200000"}}, "accounts": accounts})
    )
    namespace.extra["CREDITFLOW_CONTRACTS_FILE"] = str(contracts)
    receiver = await Receiver(SECRET).start()
    async with api_client(namespace.settings()) as client:
        for account in accounts:
            response = await client.put(
                f"/v1/accounts/{account}/webhooks",
                json={"endpoints": [{"id": "main", "url": receiver.url, "secret": SECRET}]},
                headers=auth(),
            )
            assert response.status_code == 200, response.text
        worker = WorkerProcess(namespace).start()
        await worker.wait_assigned()
        period_start = date(today.year, today.month, anchor.day)
        if period_start > today:
            period_start = date(
                today.year - (today.month == 1), (today.month - 2) % 12 + 1, anchor.day
            )
        previous = date(
            period_start.year - (period_start.month == 1),
            (period_start.month - 2) % 12 + 1,
            anchor.day,
        )
        stack = Stack(namespace, client, receiver, worker, tag, period_start, previous)
        try:
            yield stack
        finally:
            stack.worker.stop()
            await receiver.stop()


async def _send(
    stack: Stack, account: str, credits: list[str], occurred: datetime, prefix: str
) -> None:
    producer = await raw_producer(stack.namespace.settings())
    try:
        events = [
            {
                "event_id": f"{prefix}-{i}",
                "account_id": account,
                "app_id": "agent",
                "occurred_at": occurred.isoformat(),
                "credits": amount,
            }
            for i, amount in enumerate(credits)
        ]
        for start in range(0, len(events), 3):
            value = json.dumps(events[start : start + 3]).encode()
            await producer.send_and_wait(
                stack.namespace.settings().calls_topic, value, key=account.encode()
            )
    finally:
        await producer.stop()


async def _alert_ids(stack: Stack, account: str) -> list[str]:
    """Every alert record of the account in usage.alerts.v1 (repeats included)."""
    records = await read_topic(stack.namespace, stack.namespace.settings().alerts_topic)
    return [m.key.decode() for m in records if m.key.decode().startswith(account + ":")]


def _id(account: str, start: date, threshold: int) -> str:
    return f"{account}:{start.isoformat()}:{threshold}"


async def _billing_once_used(
    stack: Stack,
    account: str,
    used: str,
    period: str = "current",
    alerts: list[str] | None = None,
) -> dict[str, Any]:
    """The account's billing answer once the view shows `used` credits in the period (and,
    if given, exactly these `alerts`).

    A webhook can arrive before the view shows the crossing events: alerts are published
    before the run commits, its days after, so a billing read right after a delivery may
    still answer the previous total. A worker killed between the two leaves the alert's
    document to the deliverer, which writes it beside its POST.
    """
    answer: dict[str, Any] = {}

    async def shows_used() -> bool:
        response = await stack.client.get(
            f"/v1/accounts/{account}/billing", params={"period": period}, headers=auth()
        )
        if response.status_code != 200:
            return False
        answer.update(response.json())
        shown = [a["alert_id"] for a in answer["alerts"]]
        return bool(answer["used"] == used) and (alerts is None or shown == alerts)

    await wait_until(shows_used, timeout=30)
    return answer


async def test_crossing_50_80_100_fires_three_alerts_and_three_signed_deliveries(
    stack_with_hooks: Stack,
) -> None:
    stack = stack_with_hooks
    account = stack.account("cross")
    await _send(stack, account, ["10"] * 12, datetime.now(UTC) - timedelta(minutes=1), "x")
    expected = {_id(account, stack.period_start, t) for t in (50, 80, 100)}
    await wait_until(lambda: set(stack.receiver.delivered()) >= expected, timeout=30)
    mine = [r for r in stack.receiver.received if r.idempotency_key.startswith(account + ":")]
    assert {r.idempotency_key for r in mine} == expected
    assert len(mine) == 3, "each alert is POSTed once when the receiver is up"
    assert all(stack.receiver.verify(r.body, r.signature) for r in mine)
    assert {r.alert["threshold_percent"] for r in mine} == {50, 80, 100}
    assert sorted(await _alert_ids(stack, account)) == sorted(expected)

    async def logged() -> bool:
        alerts = (await stack.client.get(f"/v1/accounts/{account}/alerts", headers=auth())).json()[
            "alerts"
        ]
        return len(alerts) == 3 and all(
            a["deliveries"] and a["deliveries"][0]["state"] == "delivered" for a in alerts
        )

    await wait_until(logged, timeout=15)

    async def counted() -> bool:
        # The counter is written after the delivery's document, by another pipeline.
        metrics = (await stack.client.get("/metrics")).text
        delivered = next(
            (
                line
                for line in metrics.splitlines()
                if line.startswith('creditflow_alert_deliveries_total{state="delivered"}')
            ),
            "_ 0",
        )
        return int(delivered.split()[-1]) >= 3

    await wait_until(counted, timeout=15)
    billing = await _billing_once_used(stack, account, "120")
    assert billing["remaining"] == "0"
    assert billing["overage_credits"] == "20"
    assert billing["overage_amount"] == "10.00"
    assert billing["percent_used"] == "120.00"
    assert billing["period"]["start"] == stack.period_start.isoformat()
    assert {a["alert_id"] for a in billing["alerts"]} == expected


async def test_delivery_retries_until_the_receiver_is_back_then_succeeds_once(
    stack_with_hooks: Stack,
) -> None:
    stack = stack_with_hooks
    account = stack.account("down")
    key = _id(account, stack.period_start, 50)
    stack.receiver.up = False
    try:
        await _send(stack, account, ["30", "30"], datetime.now(UTC) - timedelta(minutes=1), "d")
        await wait_until(
            lambda: (
                sum(r.idempotency_key == key and r.answered == 503 for r in stack.receiver.received)
                >= 2
            ),
            timeout=30,
        )
    finally:
        stack.receiver.up = True
    await wait_until(lambda: stack.receiver.delivered().get(key) == 1, timeout=30)
    attempts = [r for r in stack.receiver.received if r.idempotency_key == key]
    assert [r.answered for r in attempts][-1] == 200
    assert stack.receiver.delivered()[key] == 1

    async def logged() -> bool:
        alerts = (await stack.client.get(f"/v1/accounts/{account}/alerts", headers=auth())).json()[
            "alerts"
        ]
        return bool(alerts) and alerts[0]["deliveries"][0]["state"] == "delivered"

    await wait_until(logged, timeout=15)
    alerts = (await stack.client.get(f"/v1/accounts/{account}/alerts", headers=auth())).json()[
        "alerts"
    ]
    assert [a["alert_id"] for a in alerts] == [key]
    assert alerts[0]["deliveries"][0]["attempts"] == len(attempts) >= 3


async def test_kill9_right_after_a_crossing_neither_loses_nor_repeats_it(
    stack_with_hooks: Stack,
) -> None:
    stack = stack_with_hooks
    account = stack.account("kill")
    key = _id(account, stack.period_start, 50)
    now = datetime.now(UTC) - timedelta(minutes=1)
    await _send(stack, account, ["10"] * 4, now, "k1")

    async def at_forty() -> bool:
        usage = await stack.client.get(
            f"/v1/accounts/{account}/usage",
            params={
                "from": stack.period_start.isoformat(),
                "to": (datetime.now(UTC).date() + timedelta(days=2)).isoformat(),
                "tz": "UTC",
            },
            headers=auth(),
        )
        return usage.status_code == 200 and usage.json()["total"]["credits"] == "40"

    await wait_until(at_forty, timeout=30)
    await _send(stack, account, ["10", "10"], now, "k2")
    await asyncio.sleep(0.05)  # a fault injected shortly after the crossing record, by design
    stack.worker.kill9()
    stack.restart_worker()
    await wait_until(lambda: stack.receiver.delivered().get(key, 0) >= 1, timeout=60)
    assert set(await _alert_ids(stack, account)) == {key}  # a replay may republish it, same id
    assert {k for k in stack.receiver.delivered() if k.startswith(account + ":")} == {key}
    # Its document too, though the kill may have come between the commit and the view write.
    await _billing_once_used(stack, account, "60", alerts=[key])


async def test_a_late_event_crossing_a_threshold_of_the_previous_period_fires_for_it(
    stack_with_hooks: Stack,
) -> None:
    stack = stack_with_hooks
    account = stack.account("late")
    in_previous = datetime.combine(stack.period_start, datetime.min.time(), UTC) - timedelta(days=2)
    await _send(stack, account, ["45"], in_previous, "p1")
    await _send(stack, account, ["60"], datetime.now(UTC) - timedelta(minutes=1), "c1")
    current = _id(account, stack.period_start, 50)
    await wait_until(lambda: current in stack.receiver.delivered(), timeout=30)
    previous = _id(account, stack.previous_start, 50)
    assert previous not in stack.receiver.delivered()
    await _send(stack, account, ["10"], in_previous + timedelta(hours=1), "p2")
    await wait_until(lambda: previous in stack.receiver.delivered(), timeout=30)
    alert = next(r.alert for r in stack.receiver.received if r.idempotency_key == previous)
    assert alert["period"]["start"] == stack.previous_start.isoformat()
    assert Decimal(alert["used"]) == Decimal(55)
    billing = await _billing_once_used(stack, account, "55", period="previous")
    assert [a["alert_id"] for a in billing["alerts"]] == [previous]
