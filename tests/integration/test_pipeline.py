"""End to end on the real stack: a few thousand events in through Kafka, exact usage out."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.integration.dataset import Dataset, add_invalid, build, local_days, reference_totals
from tests.integration.harness import (
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

MAX_RECORD_BYTES = 131_072


@pytest.fixture(scope="module", params=BACKENDS)
async def pipeline(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[Namespace, Dataset, httpx.AsyncClient, datetime]]:
    """The whole pipeline once per view backend: one Redis, and the Redis Cluster."""
    env = new_env(
        "pipe", request.param, extra={"CREDITFLOW_MAX_RECORD_BYTES": str(MAX_RECORD_BYTES)}
    )
    worker = WorkerProcess(env).start()
    now = datetime.now(UTC)
    data = build(env.name[-8:], seed=20261127, now=now)
    add_invalid(data, env.name[-8:], now, MAX_RECORD_BYTES)
    settings = env.settings()
    try:
        await worker.wait_assigned()
        producer = await raw_producer(settings)
        try:
            futures = [
                await producer.send(settings.calls_topic, value, key=key)
                for key, value in data.records
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        published_at = datetime.now(UTC)
        async with api_client(settings) as client:
            yield env, data, client, published_at
    finally:
        worker.stop()


async def _usage(client: httpx.AsyncClient, account: str, **params: str) -> dict:
    response = await client.get(f"/v1/accounts/{account}/usage", params=params, headers=auth())
    assert response.status_code == 200, response.text
    return response.json()


def _check_totals(answer: dict, expected: dict[str, tuple[int, Decimal]]) -> None:
    """``answer`` is a whole answer (totals under "total") or a series point (totals inline)."""
    got = {row["app_id"]: (row["calls"], Decimal(row["credits"])) for row in answer["apps"]}
    assert got == expected
    total = answer.get("total", answer)
    assert total["calls"] == sum(calls for calls, _ in expected.values())
    assert Decimal(total["credits"]) == sum((c for _, c in expected.values()), Decimal(0))
    for text in [total["credits"], *(row["credits"] for row in answer["apps"])]:
        assert "e" not in text.lower() and not text.endswith(".") and not text.startswith("-")


async def test_every_valid_event_counts_exactly_once(pipeline) -> None:
    env, data, client, published_at = pipeline
    start = (published_at - timedelta(days=32)).replace(minute=0, second=0, microsecond=0)
    end = (published_at + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    params = {"from": start.isoformat(), "to": end.isoformat(), "tz": "UTC"}

    async def all_counted() -> bool:
        for account in data.accounts:
            answer = await _usage(client, account, **params)
            expected = reference_totals(data, account, start, end)
            got = {r["app_id"]: (r["calls"], Decimal(r["credits"])) for r in answer["apps"]}
            # as_of passes the publish time once a heartbeat has read the end offsets since.
            # lag too: re-routed records are published after published_at, and a record of
            # duplicates only changes no total.
            if got != expected or answer["as_of"] is None or answer["lag"] != 0:
                return False
            if datetime.fromisoformat(answer["as_of"]) < published_at:
                return False
        return True

    await wait_until(all_counted, timeout=90, interval=0.5)
    for account in data.accounts:
        answer = await _usage(client, account, **params)
        _check_totals(answer, reference_totals(data, account, start, end))
        assert answer["lag"] == 0
        assert answer["as_of"] is not None
        assert datetime.fromisoformat(answer["as_of"]) >= published_at


@pytest.mark.parametrize("tz_name", ["UTC", "Asia/Seoul", "America/New_York", "Asia/Kolkata"])
async def test_random_ranges_with_daily_series(pipeline, tz_name: str) -> None:
    env, data, client, published_at = pipeline
    await test_every_valid_event_counts_exactly_once(pipeline)
    tz = ZoneInfo(tz_name)
    rng = random.Random(tz_name)
    quarter = 15 * 60
    base = int((published_at - timedelta(days=31)).timestamp()) // quarter * quarter
    span = 31 * 86400 // quarter
    ranges = []
    for _ in range(6):
        a, b = sorted(rng.sample(range(span), 2))
        ranges.append(
            (
                datetime.fromtimestamp(base + a * quarter, UTC),
                datetime.fromtimestamp(base + b * quarter, UTC),
            )
        )
    if tz_name == "America/New_York":
        # Across the fall-back change: 2026-11-01 is a 25-hour day there.
        ranges.append((datetime(2026, 10, 30, tzinfo=tz), datetime(2026, 11, 4, 7, 15, tzinfo=tz)))
    for start, end in ranges:
        for account in rng.sample(data.accounts, 2):
            answer = await _usage(
                client,
                account,
                **{"from": start.astimezone(tz).isoformat(), "to": end.astimezone(tz).isoformat()},
                tz=tz_name,
                window="day",
                group_by="app",
            )
            _check_totals(answer, reference_totals(data, account, start, end))
            windows = local_days(start, end, tz)
            assert len(answer["series"]) == len(windows)
            for point, (lo, hi) in zip(answer["series"], windows, strict=True):
                assert datetime.fromisoformat(point["start"]) == lo
                assert datetime.fromisoformat(point["end"]) == hi
                assert (
                    datetime.fromisoformat(point["start"]).utcoffset()
                    == lo.astimezone(tz).utcoffset()
                )
                _check_totals(point, reference_totals(data, account, lo, hi))


async def test_dates_mean_local_midnight(pipeline) -> None:
    env, data, client, published_at = pipeline
    await test_every_valid_event_counts_exactly_once(pipeline)
    tz = ZoneInfo("Asia/Seoul")
    day = (published_at - timedelta(days=3)).astimezone(tz).date()
    answer = await _usage(
        client,
        data.accounts[1],
        **{"from": day.isoformat(), "to": (day + timedelta(days=2)).isoformat()},
        tz="Asia/Seoul",
    )
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    _check_totals(
        answer, reference_totals(data, data.accounts[1], start, start + timedelta(days=2))
    )
    assert answer["from"] == start.isoformat()
    assert answer["series"] == []


async def test_every_invalid_record_is_dead_lettered_with_its_reason(pipeline) -> None:
    env, data, client, published_at = pipeline
    await test_every_valid_event_counts_exactly_once(pipeline)
    settings = env.settings()
    expected = Counter((reason, original) for reason, original in data.rejections)
    seen: dict[str, tuple[str, bytes]] = {}

    async def read_dlq() -> bool:
        for message in await read_topic(env, settings.dlq_topic):
            body = json.loads(message.value)
            original = (
                body["original"].encode()
                if body.get("original") is not None
                else base64.b64decode(body["original_base64"])
            )
            seen[body["dlq_id"]] = (body["reason"], original)
            assert body["source"]["topic"] == settings.calls_topic
            assert body["detail"]
        return Counter(seen.values()) == expected

    await wait_until(read_dlq, timeout=30, interval=1)
    assert set(reason for reason, _ in expected) == {
        "invalid_json", "invalid_encoding", "invalid_shape", "empty_batch", "batch_too_large",
        "record_too_large", "invalid_event", "too_late", "too_far_in_future",
    }  # fmt: skip
