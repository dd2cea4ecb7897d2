"""The billing dashboard in a real headless Chromium, against a real worker and API process.

Each check compares what the page shows with what the API answers for the same question:
the page never does money arithmetic of its own.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, Page, Playwright, async_playwright, expect

from tests.integration.harness import (
    ADMIN_TOKEN,
    ARTIFACTS,
    ROOT,
    ApiProcess,
    Namespace,
    WorkerProcess,
    new_env,
    raw_producer,
    wait_until,
)

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; conftest skips these tests without it
TZ = "Asia/Seoul"
LIGHT_TOKEN = "read-token-of-acme"
HEAVY_TOKEN = "read-token-of-globex"
APPS = ("support-bot", "search", "summarizer", "translator")
CREDITS = ("12.5", "3.25", "0.125", "48", "7.75", "150.5", "1.000001")
DEADLINE_MS = 15_000
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _anchor(today: date) -> date:
    """A monthly anchor whose current period began 2 to 6 days ago (day <= 28, no clamping)."""
    for back in range(2, 7):
        start = today - timedelta(days=back)
        if start.day <= 28:
            return date(start.year - 1, start.month, start.day)
    raise AssertionError("unreachable: one of five consecutive days is <= 28")


@dataclass
class Dash:
    env: Namespace
    api: ApiProcess
    worker: WorkerProcess
    client: httpx.AsyncClient
    browser: Browser
    light: str
    heavy: str
    seeded: int

    @property
    def url(self) -> str:
        return self.api.url

    async def get(self, path: str, token: str = ADMIN_TOKEN, **params: str) -> dict:
        response = await self.client.get(
            path, params=params, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def billing(self, account: str) -> dict:
        return await self.get(f"/v1/accounts/{account}/billing")

    async def usage(self, account: str, **params: str) -> dict:
        return await self.get(f"/v1/accounts/{account}/usage", **params)

    async def page(self) -> Page:
        context = await self.browser.new_context(
            viewport={"width": 1280, "height": 900}, locale="en-US", accept_downloads=True
        )
        return await context.new_page()


def _contracts(env: Namespace, accounts: dict[str, str], anchor: date) -> str:
    body = {
        "plans": {
            "custom": {
                "max_allotment_credits": "200000",
                "upgrade_url": "mailto:sales@creditflow.dev",
            }
        },
        "accounts": {
            account: {
                "plan": "custom",
                "allotment_credits": allotment,
                "period": {"type": "monthly", "anchor": anchor.isoformat()},
                "time_zone": TZ,
                "payg_rate": "0.012",
                "currency": "USD",
            }
            for account, allotment in accounts.items()
        },
    }
    path = ARTIFACTS / f"{env.name}-contracts.yaml"
    path.write_text(json.dumps(body))
    return str(path)


def _tokens(env: Namespace, light: str, heavy: str) -> str:
    entries = [
        {
            "name": name,
            "sha256": hashlib.sha256(token.encode()).hexdigest(),
            "scopes": [f"read:{account}"],
        }
        for name, token, account in (
            ("light-reader", LIGHT_TOKEN, light),
            ("heavy-reader", HEAVY_TOKEN, heavy),
        )
    ]
    path = ARTIFACTS / f"{env.name}-tokens.yaml"
    path.write_text(json.dumps({"tokens": entries}))
    return str(path)


def _event(account: str, event_id: str, app: str, credits: str, ago: timedelta) -> dict:
    return {
        "event_id": event_id,
        "account_id": account,
        "app_id": app,
        "occurred_at": (datetime.now(UTC) - ago).isoformat(),
        "credits": credits,
        "calls": 1,
    }


async def _publish(env: Namespace, events: list[dict]) -> None:
    settings = env.settings()
    producer = await raw_producer(settings)
    try:
        by_account: dict[str, list[dict]] = {}
        for event in events:
            by_account.setdefault(event["account_id"], []).append(event)
        for account, items in by_account.items():
            for start in range(0, len(items), 50):
                value = json.dumps(items[start : start + 50]).encode()
                await producer.send_and_wait(settings.calls_topic, value, key=account.encode())
    finally:
        await producer.stop()


def _seed(light: str, heavy: str) -> list[dict]:
    events = []
    # The light account: 9 days of traffic (some of it before the period began), 4 apps.
    for i in range(72):
        ago = timedelta(hours=3 * i + 1, minutes=7 * i % 50)
        app = APPS[(i * 7) % len(APPS)] if i % 5 else APPS[0]
        events.append(_event(light, f"seed-{i}", app, CREDITS[i % len(CREDITS)], ago))
    # The heavy account: 1,234.5 credits in the last hours, past its 1,000-credit allotment.
    for i in range(12):
        ago = timedelta(minutes=20 + 30 * i)
        events.append(_event(heavy, f"seed-{i}", APPS[i % 2], "102.875", ago))
    return events


@pytest.fixture(scope="module")
async def dash() -> AsyncIterator[Dash]:
    today = datetime.now(UTC).date()
    env = new_env("browser")
    # The namespace has its own topics and Redis database, so plain account names are safe.
    light, heavy = "acme", "globex"
    ARTIFACTS.mkdir(exist_ok=True)
    env.extra["CREDITFLOW_CONTRACTS_FILE"] = _contracts(
        env, {light: "200000", heavy: "1000"}, _anchor(today)
    )
    env.extra["CREDITFLOW_TOKENS_FILE"] = _tokens(env, light, heavy)
    worker = WorkerProcess(env).start()
    api = ApiProcess(env).start()
    playwright: Playwright | None = None
    try:
        await worker.wait_assigned()
        await api.ready()
        events = _seed(light, heavy)
        await _publish(env, events)
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
            wide = {
                "from": (datetime.now(UTC) - timedelta(days=20)).strftime("%Y-%m-%dT00:00:00Z"),
                "to": (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT00:00:00Z"),
            }

            async def all_counted() -> bool:
                calls = 0
                for account in (light, heavy):
                    response = await client.get(
                        f"/v1/accounts/{account}/usage",
                        params=wide,
                        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    )
                    if response.status_code != 200:
                        return False
                    calls += response.json()["total"]["calls"]
                return calls == len(events)

            await wait_until(all_counted, timeout=30)
            playwright = await async_playwright().start()
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            try:
                yield Dash(env, api, worker, client, browser, light, heavy, len(events))
            finally:
                await browser.close()
    finally:
        if playwright is not None:
            await playwright.stop()
        api.stop()
        worker.stop()


async def _sign_in(page: Page, token: str) -> None:
    await page.fill("#token", token)
    await page.click("#signin-submit")


async def _expect_value(page: Page, selector: str, value: str, timeout: int = DEADLINE_MS) -> None:
    await expect(page.locator(selector)).to_have_attribute("data-value", value, timeout=timeout)


def _grouped(text: str) -> str:
    """How the page shows a decimal string: thousands separators, digits unchanged."""
    whole, dot, fraction = text.partition(".")
    return f"{int(whole):,}{dot}{fraction}"


async def _table(page: Page) -> list[dict]:
    return await page.eval_on_selector_all(
        "#apps-body tr[data-app]",
        """rows => rows.map(r => ({app_id: r.dataset.app,
            calls: Number(r.querySelector('.calls').dataset.value),
            credits: r.querySelector('.credits').dataset.value,
            shown: r.querySelector('.credits').textContent}))""",
    )


async def _bars(page: Page) -> list[dict]:
    return await page.eval_on_selector_all(
        "#chart rect.bar",
        """bars => bars.map(b => ({start: b.dataset.start, end: b.dataset.end,
            credits: b.dataset.credits, calls: Number(b.dataset.calls)}))""",
    )


async def _check_range(page: Page, answer: dict) -> None:
    """The page's totals, table and chart equal a usage answer (per app, per window)."""
    await _expect_value(page, "#range-credits", answer["total"]["credits"])
    await _expect_value(page, "#range-calls", str(answer["total"]["calls"]))
    rows = await _table(page)
    assert sorted(
        ({"app_id": r["app_id"], "calls": r["calls"], "credits": r["credits"]} for r in rows),
        key=lambda r: r["app_id"],
    ) == sorted(answer["apps"], key=lambda r: r["app_id"])
    assert all(r["shown"] == _grouped(r["credits"]) for r in rows)
    bars = await _bars(page)
    assert bars == [
        {"start": p["start"], "end": p["end"], "credits": p["credits"], "calls": p["calls"]}
        for p in answer["series"]
    ]


def _csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


async def _screenshot(page: Page, name: str) -> str:
    path = ARTIFACTS / f"dashboard-{name}.png"
    await page.screenshot(path=str(path), full_page=True, animations="disabled")
    return str(path)


async def test_page_shows_the_apis_numbers_and_follows_a_custom_range(dash: Dash) -> None:
    page = await dash.page()
    try:
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda message: problems.append(message.text) if message.type == "error" else None,
        )
        await page.goto(f"{dash.url}/")
        await expect(page.locator("#signin")).to_be_visible()
        await _sign_in(page, LIGHT_TOKEN)
        await expect(page).to_have_url(f"{dash.url}/accounts/{dash.light}/billing")

        billing = await dash.billing(dash.light)
        await _expect_value(page, "#used", billing["used"])
        for field in ("allotment", "remaining", "percent_used"):
            selector = "#" + field.replace("_", "-")
            await _expect_value(page, selector, billing[field])
        assert await page.text_content("#used") == _grouped(billing["used"])
        assert await page.text_content("#allotment") == "200,000"
        assert await page.text_content("#plan-allotment") == "200,000"
        assert await page.text_content("#plan-name") == "Custom plan"
        assert "0.012 USD" in (await page.text_content("#plan-rate") or "")
        assert await page.get_attribute("#upgrade", "href") == "mailto:sales@creditflow.dev"
        assert await page.is_hidden("#overage-box")
        await expect(page.locator("#synced")).to_have_text(
            re.compile(r"synced (just now|\d+ s ago)")
        )

        # The default range is this period: the same answer as the usage API's.
        period = billing["period"]
        this_period = await dash.usage(
            dash.light,
            **{"from": period["start_at"], "to": period["end_at"]},
            tz=TZ,
            window="day",
            group_by="app",
        )
        assert this_period["total"]["credits"] == billing["used"]
        await expect(page.locator('[data-preset="current"]')).to_have_attribute(
            "aria-pressed", "true"
        )
        await _check_range(page, this_period)
        await _screenshot(page, "light")

        # A custom range (inclusive end date on the page, half-open on the API).
        today = datetime.now(ZoneInfo(TZ)).date()
        first, last = today - timedelta(days=8), today - timedelta(days=2)
        await page.fill("#from-date", first.isoformat())
        await page.fill("#to-date", last.isoformat())
        await page.click("#apply-range")
        custom = await dash.usage(
            dash.light,
            **{"from": first.isoformat(), "to": (last + timedelta(days=1)).isoformat()},
            tz=TZ,
            window="day",
            group_by="app",
        )
        assert custom["total"]["credits"] != this_period["total"]["credits"]
        await _check_range(page, custom)
        assert len(await _bars(page)) == 7

        # Sorting by calls, then CSV export of what is shown, in the shown order, exact strings.
        await page.click('[data-sort="calls"]')
        shown = await _table(page)
        assert [r["calls"] for r in shown] == sorted((r["calls"] for r in shown), reverse=True)
        async with page.expect_download() as waiting:
            await page.click("#export-csv")
        download = await waiting.value
        path = await download.path()
        rows = _csv_rows(path)
        assert [(r["app_id"], int(r["calls"]), r["credits"]) for r in rows[:-1]] == [
            (r["app_id"], r["calls"], r["credits"]) for r in shown
        ]
        assert rows[-1]["app_id"] == "(total)"
        assert rows[-1]["credits"] == custom["total"]["credits"]
        assert download.suggested_filename == (
            f"creditflow-{dash.light}-{first.isoformat()}-to-{last.isoformat()}.csv"
        )

        # A short range is shown per hour.
        await page.fill("#from-date", (today - timedelta(days=1)).isoformat())
        await page.fill("#to-date", today.isoformat())
        await page.click("#apply-range")
        hourly = await dash.usage(
            dash.light,
            **{
                "from": (today - timedelta(days=1)).isoformat(),
                "to": (today + timedelta(days=1)).isoformat(),
            },
            tz=TZ,
            window="hour",
            group_by="app",
        )
        await _check_range(page, hourly)
        assert await page.text_content("#chart-unit") == "credits per hour"

        # Another time zone: the last 7 local days of UTC, windows at UTC midnights.
        await page.click('[data-preset="last7"]')
        await page.fill("#tz", "UTC")
        await page.press("#tz", "Enter")
        utc_today = datetime.now(UTC).date()
        in_utc = await dash.usage(
            dash.light,
            **{
                "from": (utc_today - timedelta(days=6)).isoformat(),
                "to": (utc_today + timedelta(days=1)).isoformat(),
            },
            tz="UTC",
            window="day",
            group_by="app",
        )
        await expect(page.locator("#range-label")).to_contain_text("(UTC)")
        await _check_range(page, in_utc)
        assert in_utc["series"][0]["start"].endswith("+00:00")

        # An empty period says so.
        await page.fill("#from-date", (today - timedelta(days=30)).isoformat())
        await page.fill("#to-date", (today - timedelta(days=25)).isoformat())
        await page.click("#apply-range")
        await _expect_value(page, "#range-credits", "0")
        await expect(page.locator("#table-empty")).to_be_visible()
        await expect(page.locator("#chart-empty")).to_be_visible()
        assert problems == []  # no script errors, no CSP violations, no failed requests
    finally:
        await page.context.close()


async def test_new_events_update_the_open_page_without_a_reload(dash: Dash) -> None:
    page = await dash.page()
    try:
        await page.goto(f"{dash.url}/accounts/{dash.light}/billing")
        await _sign_in(page, LIGHT_TOKEN)
        before = await dash.billing(dash.light)
        await _expect_value(page, "#used", before["used"])
        await _expect_value(page, "#range-credits", before["used"])
        await page.evaluate("window.__noReload = 'still here'")

        fresh = [
            _event(dash.light, f"live-{i}", "live-app", "1000.25", timedelta(minutes=1))
            for i in range(3)
        ]
        published = time.monotonic()
        await _publish(dash.env, fresh)

        async def api_moved() -> bool:
            return (await dash.billing(dash.light))["used"] != before["used"]

        try:
            await wait_until(api_moved, timeout=30, interval=0.05)
        except AssertionError:
            metrics = (await dash.client.get("/metrics")).text
            lines = [line for line in metrics.splitlines() if line.startswith("creditflow_")]
            raise AssertionError(
                f"the API never counted the new events; worker alive={dash.worker.alive}\n"
                + "\n".join(lines)
                + "\n"
                + dash.worker.log_text()[-3000:]
            ) from None
        api_seen = time.monotonic()
        after = await dash.billing(dash.light)
        await _expect_value(page, "#used", after["used"])
        page_seen = time.monotonic()
        await _expect_value(page, "#range-credits", after["used"])
        await _expect_value(page, "#remaining", after["remaining"])
        await expect(page.locator('#apps-body tr[data-app="live-app"] .credits')).to_have_attribute(
            "data-value", "3000.75"
        )
        assert await page.evaluate("window.__noReload") == "still here"
        (ARTIFACTS / f"{dash.env.name}-live-latency.txt").write_text(
            f"published->api {api_seen - published:.3f}s, api->page {page_seen - api_seen:.3f}s\n"
        )
    finally:
        await page.context.close()


async def test_another_accounts_token_is_refused(dash: Dash) -> None:
    page = await dash.page()
    try:
        await page.goto(f"{dash.url}/accounts/{dash.heavy}/billing")
        await _sign_in(page, LIGHT_TOKEN)
        banner = page.locator("#banner")
        await expect(banner).to_be_visible()
        await expect(banner).to_contain_text(
            f"Access denied: this token cannot read account “{dash.heavy}”"
        )
        await expect(page.locator("#account-content")).to_be_hidden()
        # The token's own account stays one click away.
        await page.select_option("#account-select", dash.light)
        await expect(page).to_have_url(f"{dash.url}/accounts/{dash.light}/billing")
        await expect(banner).to_be_hidden()
        await _expect_value(page, "#used", (await dash.billing(dash.light))["used"])

        # An unknown (or expired) token is sent back to sign-in with a clear message.
        await page.click("#signout")
        await _sign_in(page, "not-a-token")
        await expect(page.locator("#signin-error")).to_have_text(
            "This token is unknown or has expired. Sign in again."
        )
        assert await page.evaluate("sessionStorage.getItem('creditflow.token')") is None
    finally:
        await page.context.close()


async def test_admin_switches_to_an_account_past_its_allotment(dash: Dash) -> None:
    page = await dash.page()
    try:
        await page.goto(f"{dash.url}/")
        await _sign_in(page, ADMIN_TOKEN)
        for account in (dash.light, dash.heavy):
            option = page.locator(f'#account-select option[value="{account}"]')
            await expect(option).to_have_count(1)
        options = await page.eval_on_selector_all(
            "#account-select option", "options => options.map(o => o.value)"
        )
        assert {dash.light, dash.heavy} <= set(options)
        await page.select_option("#account-select", dash.heavy)
        await expect(page).to_have_url(f"{dash.url}/accounts/{dash.heavy}/billing")
        billing = await dash.billing(dash.heavy)
        assert billing["used"] == "1234.5"
        assert billing["overage_credits"] == "234.5"
        assert billing["overage_amount"] == "2.81"  # 234.5 x 0.012 = 2.814, half-up to cents
        await _expect_value(page, "#used", "1234.5")
        await _expect_value(page, "#remaining", "0")
        await _expect_value(page, "#overage-credits", "234.5")
        await _expect_value(page, "#overage-amount", "2.81")
        await _expect_value(page, "#percent-used", billing["percent_used"])
        assert await page.text_content("#used") == "1,234.5"
        assert await page.text_content("#overage-amount") == "2.81 USD"
        await expect(page.locator("#overage-box")).to_be_visible()
        await expect(page.locator("#usage-card")).to_have_class(re.compile("over"))
        period = billing["period"]
        answer = await dash.usage(
            dash.heavy,
            **{"from": period["start_at"], "to": period["end_at"]},
            tz=TZ,
            window="day",
            group_by="app",
        )
        await _check_range(page, answer)
        shot = await _screenshot(page, "over-allotment")
        if os.environ.get("CREDITFLOW_UPDATE_DOCS_SCREENSHOT"):
            shutil.copy(shot, ROOT / "docs" / "dashboard.png")
    finally:
        await page.context.close()


async def test_korean_labels(dash: Dash) -> None:
    page = await dash.page()
    try:
        await page.goto(f"{dash.url}/accounts/{dash.light}/billing")
        await _sign_in(page, LIGHT_TOKEN)
        await _expect_value(page, "#used", (await dash.billing(dash.light))["used"])
        await page.click("#lang")
        assert await page.get_attribute("html", "lang") == "ko"
        await expect(page.locator("#page-title")).to_have_text("결제")
        await expect(page.locator("#usage-title")).to_have_text("이번 결제 주기 사용량")
        await expect(page.locator('[data-preset="current"]')).to_have_text("이번 주기")
        await expect(page.locator('[data-sort="credits"]')).to_have_text("크레딧")
        await expect(page.locator("#upgrade")).to_have_text("업그레이드 / 문의하기")
        await expect(page.locator("#synced")).to_contain_text("동기화")
        # Numbers do not change with the language, and the choice survives a reload.
        await _expect_value(page, "#used", (await dash.billing(dash.light))["used"])
        await page.reload()
        await expect(page.locator("#page-title")).to_have_text("결제")
        await _screenshot(page, "ko")
        await page.click("#lang")
        await expect(page.locator("#page-title")).to_have_text("Billing")
    finally:
        await page.context.close()


async def test_whoami_and_the_account_list_the_page_signs_in_with(dash: Dash) -> None:
    reader = await dash.get("/v1/whoami", token=LIGHT_TOKEN)
    assert reader == {
        "name": "light-reader",
        "scopes": [f"read:{dash.light}"],
        "admin": False,
        "accounts": [dash.light],
    }
    admin = await dash.get("/v1/whoami")
    assert admin["admin"] is True
    assert admin["accounts"] is None
    listed = await dash.get("/v1/accounts")
    rows = {row["account_id"]: row for row in listed["accounts"]}
    assert rows[dash.heavy] == {
        "account_id": dash.heavy,
        "has_contract": True,
        "has_usage": True,
        "plan": "custom",
        "time_zone": TZ,
    }
    refused = await dash.client.get(
        "/v1/accounts", headers={"Authorization": f"Bearer {LIGHT_TOKEN}"}
    )
    assert refused.status_code == 403
    assert (await dash.client.get("/v1/whoami")).status_code == 401
    page = await dash.client.get(f"/accounts/{dash.light}/billing")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert (await dash.client.get("/accounts/bad%20id/billing")).status_code == 400
    script = await dash.client.get("/static/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]


async def test_a_portal_token_in_the_fragment_signs_in_and_a_hard_limit_shows(dash: Dash) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    contract_path = f"/v1/accounts/{dash.heavy}/contract"
    contract = (await dash.client.get(contract_path, headers=admin)).json()
    body = {k: v for k, v in contract.items() if k not in ("account_id", "version")}
    changed = await dash.client.put(contract_path, json={**body, "hard_limit": True}, headers=admin)
    assert changed.status_code == 200, changed.text
    created = await dash.client.post(
        "/api/v1/portal/tokens", json={"subject": dash.heavy}, headers=admin
    )
    assert created.status_code == 200, created.text
    token = created.json()["token"]
    page = await dash.page()
    try:
        # How a platform embeds the page for its customer: no sign-in form, no token in logs.
        await page.goto(f"{dash.url}/accounts/{dash.heavy}/billing#token={token}")
        await _expect_value(page, "#used", "1234.5")
        await expect(page).to_have_url(f"{dash.url}/accounts/{dash.heavy}/billing")
        await expect(page.locator("#signin")).to_be_hidden()
        await _expect_value(page, "#plan-limit", "true")
        await expect(page.locator("#plan-limit")).to_have_text("Access stops (hard limit)")
        await expect(page.locator("#access-paused")).to_be_visible()
        access = (await dash.client.get(f"/v1/accounts/{dash.heavy}/access", headers=admin)).json()
        assert access["has_access"] is False and access["hard_limit"] is True
        # The portal token reads its own account only.
        await page.goto(f"{dash.url}/accounts/{dash.light}/billing")
        await expect(page.locator("#banner")).to_contain_text("cannot read account")
    finally:
        await page.context.close()
        await dash.client.put(contract_path, json={**body, "hard_limit": False}, headers=admin)
    page = await dash.page()
    try:
        await page.goto(f"{dash.url}/accounts/{dash.light}/billing")
        await _sign_in(page, LIGHT_TOKEN)
        await _expect_value(page, "#plan-limit", "false")
        await expect(page.locator("#plan-limit")).to_have_text("Pay-as-you-go")
        await expect(page.locator("#access-paused")).to_be_hidden()
    finally:
        await page.context.close()
