"""Issue 9's security and API findings on the real stack: a real worker, a real uvicorn server.

Each test is named after its finding; the broker-free halves are in tests/api, tests/core,
tests/streams and tests/cli.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from cli.dlq import redrive_command
from tests.integration.harness import (
    ARTIFACTS,
    ApiProcess,
    Namespace,
    WorkerProcess,
    api_client,
    auth,
    new_env,
    raw_producer,
    read_topic,
    wait_until,
)

READ_TOKEN = "sec-read-token-0123456789"
WRITE_TOKEN = "sec-write-token-0123456789"
OTHER_READ_TOKEN = "sec-other-read-token-0123456789"
MAX_REQUEST_BYTES = 64 * 1024
STREAMS_PER_TOKEN, STREAMS_TOTAL, STREAM_POINTS = 2, 3, 100


@dataclass
class Stack:
    env: Namespace
    client: httpx.AsyncClient
    server: ApiProcess
    account: str  # readable by READ_TOKEN and OTHER_READ_TOKEN, writable by WRITE_TOKEN
    hooked: str  # an account with an alert on its first credit and an unreachable webhook


def _tokens(env: Namespace, accounts: list[str]) -> str:
    def entry(name: str, token: str, scopes: list[str]) -> dict[str, object]:
        return {
            "name": name,
            "sha256": hashlib.sha256(token.encode()).hexdigest(),
            "scopes": scopes,
        }

    reads = [f"read:{a}" for a in accounts]
    entries = [
        entry("reader", READ_TOKEN, reads),
        entry("other-reader", OTHER_READ_TOKEN, reads),
        entry("writer", WRITE_TOKEN, [*reads, *(f"write:{a}" for a in accounts)]),
    ]
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{env.name}-tokens.yaml"
    path.write_text(json.dumps({"tokens": entries}))
    return str(path)


def _contract(allotment: str, rate: object, thresholds: list[int] | None = None) -> dict:
    anchor = date(datetime.now(UTC).year - 1, 1, 1).isoformat()
    return {
        "plan": "custom",
        "allotment_credits": allotment,
        "period": {"type": "monthly", "anchor": anchor},
        "time_zone": "UTC",
        "payg_rate": rate,
        "currency": "USD",
        "alert_thresholds": thresholds or [50, 80, 100],
    }


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    env = new_env(
        "sec",
        extra={
            "CREDITFLOW_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES),
            "CREDITFLOW_SSE_STREAMS_PER_TOKEN": str(STREAMS_PER_TOKEN),
            "CREDITFLOW_SSE_STREAMS_TOTAL": str(STREAMS_TOTAL),
            "CREDITFLOW_SSE_MAX_POINTS": str(STREAM_POINTS),
        },
    )
    tag = env.name[-8:]
    account, hooked = f"sec-{tag}", f"hooked-{tag}"
    env.extra["CREDITFLOW_TOKENS_FILE"] = _tokens(env, [account, hooked])
    async with api_client(env.settings()) as client:
        # Before the worker starts, so it reads both at start: an alert on the first credit,
        # delivered to a name that never resolves (.invalid), so deliveries fail and log why.
        contract = await client.put(
            f"/v1/accounts/{hooked}/contract",
            json=_contract("1", "0.5", [100]),
            headers=auth(),
        )
        assert contract.status_code == 200, contract.text
        hooks = await client.put(
            f"/v1/accounts/{hooked}/webhooks",
            json={"endpoints": [{"id": "main", "url": "https://hooks.invalid/cf?key=s3cret"}]},
            headers=auth(),
        )
        assert hooks.status_code == 200, hooks.text
        worker = WorkerProcess(env).start()
        server = ApiProcess(env).start()
        try:
            await worker.wait_assigned()
            await server.ready()
            yield Stack(env, client, server, account, hooked)
        finally:
            server.stop()
            worker.stop()


def _event(account: str, event_id: str, credits: str, **extra: object) -> dict:
    occurred = datetime.now(UTC) - timedelta(minutes=2)
    return {
        "event_id": event_id,
        "account_id": account,
        "app_id": "sec",
        "occurred_at": occurred.isoformat(),
        "credits": credits,
        **extra,
    }


async def _raw_http(server: ApiProcess, request: bytes) -> bytes:
    """Send raw request bytes to the real server; its whole answer (it must answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        return head
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


# ------------------------------------------------------------------ 7: tokens on the wire


async def test_finding_07_non_utf8_bearer_is_401_on_the_real_server(stack: Stack) -> None:
    for path in (f"/v1/accounts/{stack.account}/usage?from=2026-01-01&to=2026-01-02", "/v1/whoami"):
        head = await _raw_http(
            stack.server,
            f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode()
            + b"Authorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n",
        )
        assert head.startswith(b"HTTP/1.1 401 "), head


# ------------------------------------------------------------------ 8: money in admin bodies


async def test_finding_08_admin_contract_rates_are_exact_and_bounded(stack: Stack) -> None:
    client, account = stack.client, stack.account
    path = f"/v1/accounts/{account}/contract"
    exact = json.dumps(_contract("0", "RATE")).replace('"RATE"', "0.0123456789012345678")
    json_type = {**auth(), "content-type": "application/json"}
    answer = await client.put(path, content=exact, headers=json_type)
    assert answer.status_code == 200, answer.text
    assert answer.json()["payg_rate"] == "0.0123456789012345678"
    for rate in ("1e308", '"1e999999"', "1E-30"):
        body = json.dumps(_contract("0", "RATE")).replace('"RATE"', rate)
        refused = await client.put(path, content=body, headers=json_type)
        assert refused.status_code == 400, (rate, refused.text)
        assert refused.json()["error"]["code"] == "invalid_contract"
        assert "payg_rate" in refused.json()["error"]["message"]
    broken = await client.put(path, content=b'{"payg_rate": NaN}', headers=json_type)
    assert broken.status_code == 400
    largest = "999999999.99999999999999999999"
    assert (await client.put(path, json=_contract("0", largest), headers=auth())).status_code == 200
    sent = await client.post(
        "/v1/events", json=_event(account, "overage-1", "1.5"), headers=auth(WRITE_TOKEN)
    )
    assert sent.json()["accepted"] == 1

    async def billed() -> dict | None:
        response = await client.get(f"/v1/accounts/{account}/billing", headers=auth(READ_TOKEN))
        assert response.status_code == 200, response.text
        body: dict = response.json()
        return body if body["used"] == "1.5" else None

    await wait_until(billed, timeout=30)
    bill = await billed()
    assert bill is not None
    expected = (Decimal("1.5") * Decimal(largest)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert bill["overage_amount"] == f"{expected:f}"
    assert bill["plan"]["payg_rate"] == largest


# ------------------------------------------------------------------ 9: request bodies


async def test_finding_09_real_server_refuses_oversized_bodies(stack: Stack) -> None:
    head = await _raw_http(
        stack.server,
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {WRITE_TOKEN}\r\nContent-Length: 10000000000\r\n\r\n".encode()
        + b"[",
    )
    assert head.startswith(b"HTTP/1.1 413 "), head
    # A chunked body that never ends: the answer must come once the cap is passed, while the
    # client is still sending (reading the whole body first would never answer).
    chunk = b" " * 8192
    unfinished = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(16))
    head = await _raw_http(
        stack.server,
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {WRITE_TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + unfinished,
    )
    assert len(unfinished) > 2 * MAX_REQUEST_BYTES
    assert head.startswith(b"HTTP/1.1 413 "), head


# ------------------------------------------------------------------ 10: streams


async def _open(
    real: httpx.AsyncClient, exits: contextlib.AsyncExitStack, path: str, token: str
) -> httpx.Response:
    return await exits.enter_async_context(real.stream("GET", path, headers=auth(token)))


async def test_finding_10_usage_streams_are_limited_per_token_and_in_all(stack: Stack) -> None:
    path = f"/v1/accounts/{stack.account}/usage/stream"
    async with httpx.AsyncClient(base_url=stack.server.url, timeout=20) as real:
        async with contextlib.AsyncExitStack() as first:
            for _ in range(STREAMS_PER_TOKEN):
                assert (await _open(real, first, path, READ_TOKEN)).status_code == 200
            # Bounded: were the limit missing, this would be a stream that never ends.
            over = await asyncio.wait_for(real.get(path, headers=auth(READ_TOKEN)), 10)
            assert over.status_code == 429
            assert over.json()["error"]["code"] == "too_many_streams"
            async with contextlib.AsyncExitStack() as second:
                assert (await _open(real, second, path, OTHER_READ_TOKEN)).status_code == 200
                full = await asyncio.wait_for(real.get(path, headers=auth(WRITE_TOKEN)), 10)
                assert full.status_code == 429
                assert f"already serves {STREAMS_TOTAL}" in full.json()["error"]["message"]
        # Closed streams give their slots back (the server notices the disconnects).

        async def reopened() -> bool:
            async with real.stream("GET", path, headers=auth(READ_TOKEN)) as again:
                return again.status_code == 200

        await wait_until(reopened, timeout=15, interval=0.3)


async def test_finding_10_a_stream_may_ask_for_fewer_windows_than_a_query(stack: Stack) -> None:
    params = {"from": "2026-01-01", "to": "2026-01-31", "tz": "UTC", "window": "hour"}
    usage = await stack.client.get(
        f"/v1/accounts/{stack.account}/usage", params=params, headers=auth(READ_TOKEN)
    )
    assert usage.status_code == 200
    stream = await asyncio.wait_for(  # bounded: without the limit this stream never ends
        stack.client.get(
            f"/v1/accounts/{stack.account}/usage/stream", params=params, headers=auth(READ_TOKEN)
        ),
        10,
    )
    assert stream.status_code == 400
    assert f"at most {STREAM_POINTS} points" in stream.json()["error"]["message"]


# ------------------------------------------------------------------ 11: webhooks


async def test_finding_11_private_webhook_targets_are_refused(stack: Stack) -> None:
    for url in (
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:6379/",
        "http://[::ffff:127.0.0.1]:9092/",
        "http://10.0.0.8/hook",
    ):
        refused = await stack.client.put(
            f"/v1/accounts/{stack.account}/webhooks",
            json={"endpoints": [{"id": "x", "url": url}]},
            headers=auth(),
        )
        assert refused.status_code == 400, (url, refused.text)
        assert refused.json()["error"]["code"] == "invalid_webhooks"


async def test_finding_11_read_tokens_see_delivery_state_not_urls_or_errors(stack: Stack) -> None:
    client, account = stack.client, stack.hooked
    sent = await client.post(
        "/v1/events", json=_event(account, "cross-1", "2"), headers=auth(WRITE_TOKEN)
    )
    assert sent.json()["accepted"] == 1

    async def failed_attempt() -> bool:
        alerts = (await client.get(f"/v1/accounts/{account}/alerts", headers=auth())).json()
        deliveries = [d for a in alerts["alerts"] for d in a["deliveries"]]
        return bool(deliveries) and deliveries[0]["last_error"] is not None

    await wait_until(failed_attempt, timeout=60)
    admin = (await client.get(f"/v1/accounts/{account}/alerts", headers=auth())).json()
    assert admin["alerts"][0]["deliveries"][0]["url"].endswith("key=s3cret")
    for path in (f"/v1/accounts/{account}/alerts", f"/v1/accounts/{account}/billing"):
        shown = await client.get(path, headers=auth(READ_TOKEN))
        assert shown.status_code == 200
        delivery = shown.json()["alerts"][0]["deliveries"][0]
        assert delivery["state"] == "pending" and delivery["attempts"] >= 1
        assert "url" not in delivery and "last_error" not in delivery
        assert "s3cret" not in shown.text and "hooks.invalid" not in shown.text


# ------------------------------------------------------------------ 12: smaller defects


async def test_finding_12_stream_with_an_unknown_zone_is_a_400(stack: Stack) -> None:
    answer = await stack.client.get(
        f"/v1/accounts/{stack.account}/usage/stream",
        params={"tz": "Bad/Zone"},
        headers=auth(READ_TOKEN),
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_query"
    assert "unknown time zone" in answer.json()["error"]["message"]


async def test_finding_12_one_rule_for_sub_millisecond_digits(stack: Stack) -> None:
    path = f"/v1/accounts/{stack.account}/usage"
    for start in ("2026-01-01T00:00:00.0001Z", "2026-01-01T00:00:00.0000001Z"):
        answer = await stack.client.get(
            path, params={"from": start, "to": "2026-01-02"}, headers=auth(READ_TOKEN)
        )
        assert answer.status_code == 400, start
        assert "sub-millisecond" in answer.json()["error"]["message"]
    zeros = await stack.client.get(
        path, params={"from": "2026-01-01T00:00:00.0000000Z", "to": "2026-01-02"}, headers=auth()
    )
    assert zeros.status_code == 200


async def test_finding_12_zones_before_1980_are_a_400(stack: Stack) -> None:
    answer = await stack.client.get(
        f"/v1/accounts/{stack.account}/usage",
        params={"from": "1970-01-01", "to": "1970-01-02", "tz": "Pacific/Kiritimati"},
        headers=auth(),
    )
    assert answer.status_code == 400
    assert "1980" in answer.json()["error"]["message"]


# ------------------------------------------------------------------ 13: DLQ re-drive


def _big_invalid(account: str, event_id: str) -> bytes:
    """An event over the DLQ's 256 KiB original limit, invalid for its attributes' size."""
    event = _event(account, event_id, "1", attributes={"blob": "z" * 300_000})
    return json.dumps(event, separators=(",", ":")).encode()


async def _dead_letters(env: Namespace, account: str) -> list[dict]:
    records = await read_topic(env, env.settings().dlq_topic)
    return [
        body for body in (json.loads(m.value) for m in records) if body.get("account_id") == account
    ]


async def test_finding_13_redrive_sends_truncated_originals_whole(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    env = stack.env
    settings = env.settings()
    account = f"dlq-{env.name[-8:]}"
    single = _big_invalid(account, "big-single")
    item = _big_invalid(account, "big-item")
    batch = b"[" + json.dumps(_event(account, "small", "1")).encode() + b", " + item + b"]"
    producer = await raw_producer(settings)
    try:
        await producer.send_and_wait(settings.calls_topic, single, key=account.encode())
        await producer.send_and_wait(settings.calls_topic, batch, key=account.encode())
    finally:
        await producer.stop()

    firsts: list[dict] = []

    async def dead_lettered() -> bool:
        firsts[:] = await _dead_letters(env, account)
        return len(firsts) == 2

    await wait_until(dead_lettered, timeout=30, interval=0.5)
    assert all(d["original_truncated"] and d["reason"] == "invalid_event" for d in firsts)
    assert sorted(d["original_bytes"] for d in firsts) == sorted([len(single), len(item)])
    ids = [d["dlq_id"] for d in firsts]

    assert await redrive_command(settings, None, ids, dry_run=False) == 0
    again: list[dict] = []

    async def dead_lettered_again() -> bool:
        again[:] = [d for d in await _dead_letters(env, account) if d["dlq_id"] not in ids]
        return len(again) >= 2

    await wait_until(dead_lettered_again, timeout=30, interval=0.5)
    # The whole originals went back, so they fail for the same reason, not as broken JSON.
    assert [d["reason"] for d in again] == ["invalid_event", "invalid_event"]
    assert sorted(d["original_bytes"] for d in again) == sorted([len(single), len(item)])
    capsys.readouterr()

    # Once the source record is gone (retention), re-drive says it cannot, and does nothing.
    single_letter = next(d for d in firsts if d["index"] is None)
    source = single_letter["source"]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        tp = TopicPartition(source["topic"], source["partition"])
        await admin.delete_records({tp: RecordsToDelete(source["offset"] + 1)})
    finally:
        await admin.close()
    assert await redrive_command(settings, None, [single_letter["dlq_id"]], dry_run=False) == 1
    err = capsys.readouterr().err
    assert f"cannot re-drive {single_letter['dlq_id']}" in err
    assert "no longer in Kafka" in err
