"""``creditflow top ACCOUNT``: a live terminal table of an account's per-app usage this month."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from config.clock import now_ms
from config.contracts import load_contracts
from config.settings import get_settings
from core.localtime import month_bounds, parse_tz

__all__ = ("render", "run_top")


def render(answer: dict[str, Any]) -> str:
    """The table for one usage answer."""
    rows = answer.get("apps") or []
    lines = [
        f"creditflow top  {answer['account_id']}  {answer['from']} .. {answer['to']}"
        f"  ({answer['tz']})",
        f"as_of {answer['as_of']}  lag {answer['lag']} records",
        "",
        f"{'app':<24}{'calls':>12}{'credits':>20}",
        "-" * 56,
    ]
    for row in sorted(rows, key=lambda r: r["app_id"]):
        lines.append(f"{row['app_id']:<24}{row['calls']:>12,}{row['credits']:>20}")
    lines.append("-" * 56)
    total = answer["total"]
    lines.append(f"{'total':<24}{total['calls']:>12,}{total['credits']:>20}")
    return "\n".join(lines)


def _fetch(url: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        answer: dict[str, Any] = json.loads(response.read())
        return answer


async def run_top(
    account: str, api: str | None, token: str | None, tz: str | None, once: bool
) -> int:
    """Redraw the table every second until interrupted (or once)."""
    settings = get_settings()
    base = api or f"http://{settings.api_host}:{settings.api_port}"
    token = token or settings.effective_admin_token
    tz = tz or load_contracts(settings.contracts_file).time_zone_of(account)
    first, following = month_bounds(now_ms(), parse_tz(tz))
    start, end = first.isoformat(), following.isoformat()
    query = urllib.parse.urlencode({"from": start, "to": end, "tz": tz, "group_by": "app"})
    url = f"{base}/v1/accounts/{account}/usage?{query}"
    while True:
        try:
            text = render(await asyncio.to_thread(_fetch, url, token))
        except (urllib.error.URLError, OSError) as error:
            text = f"creditflow top: {url}: {error}"
        if once:
            print(text)
            return 0
        print("\x1b[2J\x1b[H" + text, flush=True)
        await asyncio.sleep(1.0)
