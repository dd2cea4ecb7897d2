"""The reader's cache of account-months, without Redis: a later query of a cached month reads
only the edges it lacks, and the merged records answer exactly (pure: a fake script)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from core.days import Bucket, DayUsage
from core.usage import AppDays, month_day, parse_usage_query, query_edges, render_usage
from view.codec import PackedDay, encode, entries
from view.keys import ViewKeys, month_id
from view.reader import ViewReader

FIRST_DAY = 20_400  # 2025-11-08


class _Script:
    sha = "fake"

    def __init__(self, run: Any) -> None:
        self._run = run

    async def __call__(self, keys: list[str], args: list[str]) -> Any:
        return await self._run(keys, args)


class _FakeRedis:
    """Just enough of a client for ViewReader: ``read_days.lua`` computed from whole days."""

    def __init__(self, days: dict[str, dict[int, DayUsage]]) -> None:
        self.days = days
        self.edges_asked: list[str] = []

    def register_script(self, _body: str) -> Any:
        return _Script(self._read_days)

    async def hgetall(self, _key: str) -> dict[bytes, bytes]:
        return {}  # no progress lines: freshness unknown

    def _records(self, month: int, spec: str) -> list[bytes]:
        if not spec:
            return []
        found: list[bytes] = []
        for app, days in self.days.items():
            by_day = {month_day(day)[1]: usage for day, usage in days.items()
                      if month_day(day)[0] == month}  # fmt: skip
            totals = []
            for edge in spec.split(","):
                day_of_month, slot = map(int, edge.split("."))
                usage = by_day.get(day_of_month)
                totals.append(
                    (0, 0, 0)
                    if usage is None
                    else PackedDay(encode(usage.columns())[0]).before(slot)
                )
            found += [app.encode(), entries(totals)]
        return found

    async def _read_days(self, keys: list[str], args: list[str]) -> list[Any]:
        months = {month_day(day)[0] for days in self.days.values() for day in days}
        reply: list[Any] = [
            b"1",
            [b"#", b"1", *(x for m in months for x in (month_id(m).encode(), b"1"))],
        ]
        for at in range(0, len(args), 4):
            name, held, if_same, every = args[at : at + 4]
            month = next((m for m in months if month_id(m) == name), None)
            if month is None:
                reply.append([None, None, []])
            elif held == "1":
                self.edges_asked.append(if_same)
                reply.append([b"1", None, self._records(month, if_same)])
            else:
                rows = []
                for app, days in self.days.items():
                    totals = [(0, 0, 0)] * 31
                    for day, usage in days.items():
                        if month_day(day)[0] == month:
                            totals[month_day(day)[1] - 1] = (len(usage.slots), *usage.total)
                    rows += [app.encode(), entries(totals)]
                self.edges_asked.append(every)
                reply.append([b"1", rows, self._records(month, every)])
        return reply


def test_a_cached_month_read_again_for_other_edges_answers_exactly() -> None:
    rng = random.Random(5)
    days = {
        app: {
            day: DayUsage(
                1, {s: Bucket(rng.randrange(9), rng.randrange(10**9)) for s in range(0, 96, 7)}
            )
            for day in range(FIRST_DAY, FIRST_DAY + 60)
            if rng.random() < 0.8
        }
        for app in ("a", "b%s")
    }
    fake = _FakeRedis(days)
    reader = ViewReader(fake, ViewKeys("t"), 1, cache_bytes=1 << 24)  # type: ignore[arg-type]
    whole = {app: AppDays.from_days(held) for app, held in days.items()}
    asked = []
    for zone in ("Asia/Kathmandu", "America/St_Johns", "Asia/Kathmandu", "Europe/London"):
        query = parse_usage_query("acct", "2025-11-20", "2025-12-20", zone, "day", "app", "UTC")
        read = asyncio.run(reader.usage("acct", query_edges(query)))
        assert render_usage(query, read.apps) == render_usage(query, whole), zone
        asked.append(list(fake.edges_asked))
        fake.edges_asked.clear()
    # The second zone's read asked only its own edges of the cached months; the third (the
    # first zone again) asked none; London's winter midnights are UTC's: nothing to cut.
    assert all(asked[0]) and all(asked[1]) and set(asked[0]).isdisjoint(asked[1])
    assert asked[2] == ["", ""] and asked[3] == ["", ""]
