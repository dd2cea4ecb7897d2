"""A billing period longer than the late horizon counts all of its history (issue 9, finding 5).

The worker's state holds only the horizon (35 days), so a period total first opened for a
one-year contract knows only its last weeks from the state; the rest comes from the serving
view. Here the account's older usage sits in the bucket topic only (as if the worker had
applied it months ago), the contract's period began 90 days ago, and one new event opens the
period: the 50% alert fires with the whole period's usage, never with the last month's alone.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from config.topics import ensure_topics
from tests.integration.harness import (
    ARTIFACTS,
    WorkerProcess,
    api_client,
    auth,
    new_env,
    raw_producer,
    read_topic,
    wait_until,
)


async def test_finding_05_alerts_count_history_older_than_the_horizon() -> None:
    namespace = new_env("longperiod")
    account = f"yearly-{namespace.name[-8:]}"
    today = datetime.now(UTC).date()
    history_day = today - timedelta(days=60)
    contracts = ARTIFACTS / f"{namespace.name}-contracts.yaml"
    ARTIFACTS.mkdir(exist_ok=True)
    contracts.write_text(
        json.dumps(
            {
                "plans": {"custom": {"max_allotment_credits": "200000"}},
                "accounts": {
                    account: {
                        "plan": "custom",
                        "allotment_credits": "100",
                        "period": {
                            "type": "explicit",
                            "start": (today - timedelta(days=90)).isoformat(),
                            "end": (today + timedelta(days=275)).isoformat(),
                        },
                        "time_zone": "UTC",
                        "payg_rate": "0.5",
                        "currency": "USD",
                        "alert_thresholds": [50, 80, 100],
                    }
                },
            }
        )
    )
    namespace.extra["CREDITFLOW_CONTRACTS_FILE"] = str(contracts)
    settings = namespace.settings()
    await ensure_topics(settings)
    producer = await raw_producer(settings)
    try:
        # 60 credits, 60 days ago: a day record as the worker publishes them.
        history = {
            "format": 2,
            "account_id": account,
            "app_id": "agent",
            "day": history_day.isoformat(),
            "version": 0,
            "calls": 6,
            "credits": "60",
            "slots": [[40, 6, "60"]],
            "source_partition": 0,
        }
        key = f"{account}|agent|{history_day.isoformat()}".encode()
        await producer.send_and_wait(settings.buckets_topic, json.dumps(history).encode(), key=key)
        worker = WorkerProcess(namespace).start()
        try:
            await worker.wait_assigned()
            now = datetime.now(UTC) - timedelta(minutes=1)
            event = {
                "event_id": "e-now",
                "account_id": account,
                "app_id": "agent",
                "occurred_at": now.isoformat(),
                "credits": "1",
            }
            await producer.send_and_wait(
                settings.calls_topic, json.dumps(event).encode(), key=account.encode()
            )

            async def alerts() -> list[dict[str, object]]:
                records = await read_topic(namespace, settings.alerts_topic)
                return [json.loads(m.value) for m in records if m.key.decode().startswith(account)]

            async def fired() -> bool:
                return bool(await alerts())

            await wait_until(fired, timeout=60)
            found = await alerts()
            assert [(a["threshold_percent"], a["used"]) for a in found] == [(50, "61")]
            async with api_client(settings) as client:
                # The alert can be published before the view shows the day it crossed in.
                async def billed() -> bool:
                    billing = await client.get(f"/v1/accounts/{account}/billing", headers=auth())
                    assert billing.status_code in (200, 503), billing.text
                    return billing.status_code == 200 and billing.json()["used"] == "61"

                await wait_until(billed, timeout=30)
        finally:
            worker.stop()
    finally:
        await producer.stop()
