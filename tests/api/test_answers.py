"""Answer rendering, caching and stream slots (finding 10), health bodies (finding 12).

Broker-free: answers are rendered from an in-memory view; /healthz talks to a Redis port
where nothing listens.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import api.answers as usage_route
from api.app import create_app
from api.services import AnswerCache, Services, StreamSlots
from config.settings import Settings
from core.buckets import to_epoch_ms
from core.days import DAY_MS, Bucket, DayUsage
from core.usage import AppDays, UsageQuery, parse_usage_query


def _settings(tmp_path: Path, **fields: Any) -> Settings:
    return Settings(
        admin_token="an-admin-secret-0123", tokens_file=tmp_path / "none.yaml", **fields
    )


def _view(apps: int, days: int) -> dict[str, AppDays]:
    """Every hour of ``days`` days from 2025-01-01 holds one call of one credit, per app."""
    first = to_epoch_ms(datetime(2025, 1, 1, tzinfo=UTC)) // DAY_MS
    hourly = {slot: Bucket(1, 1_000_000) for slot in range(0, 96, 4)}
    usage = {first + day: DayUsage(1, hourly) for day in range(days)}
    return {f"app-{a}": AppDays.from_days(usage) for a in range(apps)}


def _query(window: str, days: int) -> UsageQuery:
    end = f"2025-01-{1 + days:02d}" if days < 31 else "2026-01-01"
    return parse_usage_query("acme", "2025-01-01", end, "UTC", window, "app", "UTC")


async def test_finding_10_large_answers_are_computed_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real = usage_route.render_usage

    def recording(query: UsageQuery, apps: Mapping[str, AppDays]) -> bytes:
        threads.append(threading.current_thread().name)
        return real(query, apps)

    monkeypatch.setattr(usage_route, "render_usage", recording)
    svc = Services.create(_settings(tmp_path))
    loop_thread = threading.current_thread().name
    big = _query("hour", 365)  # 8,760 hourly windows x 20 apps
    body = await usage_route.render_answer(svc, ("big",), big, _view(20, 365))
    assert len(orjson.loads(body)["series"]) == 8760
    small = _query("day", 3)
    await usage_route.render_answer(svc, ("small",), small, _view(2, 3))
    assert threads[0] != loop_thread, "a year of hourly per-app windows ran on the event loop"
    assert threads[1] == loop_thread  # small answers skip the thread hop
    assert svc.answers.get(("big",)) == body


def test_finding_10_answer_cache_is_bounded_in_bytes() -> None:
    cache = AnswerCache(max_bytes=4 * 1024 * 1024)
    answer = b"x" * (512 * 1024)
    for n in range(40):
        cache.put(("acme", n), answer)
        assert cache.size_bytes <= 4 * 1024 * 1024
    assert cache.get(("acme", 39)) == answer  # newest kept
    assert cache.get(("acme", 0)) is None  # oldest dropped
    cache.put(("huge",), b"y" * (2 * 1024 * 1024))  # over a quarter of the budget: not kept
    assert cache.get(("huge",)) is None


def test_finding_10_answer_cache_budget_is_a_setting(tmp_path: Path) -> None:
    svc = Services.create(_settings(tmp_path, answer_cache_bytes=1024 * 1024))
    svc.answers.put(("a",), b"z" * 300_000)
    assert svc.answers.get(("a",)) is None
    svc.answers.put(("b",), b"z" * 200_000)
    assert svc.answers.get(("b",)) is not None


def test_finding_10_stream_slots_per_token_and_in_all() -> None:
    slots = StreamSlots(per_token=2, total=3)
    assert slots.acquire("reader") is None
    assert slots.acquire("reader") is None
    assert "token already has 2" in (slots.acquire("reader") or "")
    assert slots.acquire("other") is None
    assert "already serves 3" in (slots.acquire("third") or "")
    slots.release("reader")
    assert slots.acquire("third") is None
    assert slots.acquire("reader") is not None  # total is full again


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_finding_12_healthz_says_what_is_down_without_internal_addresses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = _closed_port()
    settings = _settings(tmp_path, redis_url=f"redis://127.0.0.1:{port}/0")
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://creditflow.test") as client:
        response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "redis": "unreachable"}
    assert str(port) not in response.text
    assert str(port) in caplog.text, "the driver's error belongs in the log"


def test_finding_11_read_tokens_do_not_see_webhook_urls_or_errors() -> None:
    from api.auth import Principal
    from api.routes.billing import visible_alerts

    delivery = {
        "endpoint_id": "main",
        "url": "https://hooks.example.com/x?key=secret",
        "state": "pending",
        "attempts": 2,
        "last_status": None,
        "last_error": "ClientConnectorError: Cannot connect to host 10.0.0.5:6379",
        "history": [{"at": "2026-11-27T05:13:34Z", "status": None, "error": "refused"}],
    }
    alerts = [{"alert_id": "acme:2026-11-01:80", "deliveries": [delivery]}]
    reader = Principal("reader", frozenset({"read:acme"}))
    shown = visible_alerts(alerts, reader)
    text = orjson.dumps(shown).decode()
    assert "secret" not in text and "10.0.0.5" not in text and "refused" not in text
    assert shown[0]["deliveries"][0]["state"] == "pending"
    assert shown[0]["deliveries"][0]["attempts"] == 2
    assert shown[0]["deliveries"][0]["history"] == [{"at": "2026-11-27T05:13:34Z", "status": None}]
    admin = Principal("admin", frozenset({"admin"}))
    assert visible_alerts(alerts, admin) == alerts
    assert alerts[0]["deliveries"][0]["url"].endswith("key=secret")  # not modified in place
