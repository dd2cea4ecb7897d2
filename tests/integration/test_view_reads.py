"""What the read script cuts from day values, on one Redis and on the Redis Cluster: the usage
before any edge, exact for narrow and wide totals, with the cache on and off."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from core.days import DAY_MS, Bucket, DayKey, DayUsage
from core.usage import Totals, month_day
from tests.integration.harness import BACKENDS, new_env
from tests.view.legacy import without_counts
from view.codec import ENTRY_SIZE, NARROW_SIZE, encode
from view.connection import Client
from view.epoch import ViewEpoch
from view.keys import ViewKeys, day_field
from view.reader import ViewReader
from view.writer import ViewWriter

SLOT_MS = DAY_MS // 96
FIRST_DAY = 20_500  # 2026-02-16: the days span three UTC months
DAYS = 45
WIDE = 2**64 + 7  # micro-credits a narrow entry cannot hold


def _history(rng: random.Random) -> dict[DayKey, DayUsage]:
    days: dict[DayKey, DayUsage] = {}
    for app in ("alpha", "bot", "zeta"):
        for day in range(FIRST_DAY, FIRST_DAY + DAYS):
            if rng.random() < 0.2:
                continue  # a day without usage
            slots = {
                slot: Bucket(rng.randint(0, 300), rng.randint(0, 10**10))
                for slot in range(96)
                if rng.random() < rng.choice((0.05, 0.3, 1.0))
            }
            days[DayKey("acme", app, day)] = DayUsage(1, slots)
    # One day of one app beyond 64 bits: that app's month row and edge records go wide.
    days[DayKey("acme", "bot", FIRST_DAY + 20)] = DayUsage(
        2, {3: Bucket(1, WIDE), 70: Bucket(2, 5)}
    )
    return days


def _brute(days: dict[DayKey, DayUsage], app: str, start: int, end: int) -> Totals:
    found = [
        bucket
        for key, usage in days.items()
        if key.app_id == app
        for slot, bucket in usage.slots.items()
        if start <= key.day * DAY_MS + slot * SLOT_MS < end
    ]
    return len(found), sum(b.calls for b in found), sum(b.micro for b in found)


def _edges(rng: random.Random) -> list[int]:
    """Edges of a query: random ones across the months, and every slot of two days."""
    first = FIRST_DAY * DAY_MS
    edges = {first - DAY_MS, first + DAYS * DAY_MS}
    edges |= {first + rng.randrange(DAYS * 96) * SLOT_MS for _ in range(60)}
    for day in (FIRST_DAY + 20, FIRST_DAY + rng.randrange(DAYS)):
        edges |= {day * DAY_MS + slot * SLOT_MS for slot in range(97)}
    return sorted(edges)


async def _complete_view(client: Client, keys: ViewKeys, days: dict[DayKey, DayUsage]) -> None:
    """A view marked complete that holds ``days``."""
    epoch = ViewEpoch(client, keys)
    await epoch.begin("e1")
    assert await epoch.finish("e1") == 0
    if days:
        columns = [(key, usage.columns()) for key, usage in days.items()]
        assert await ViewWriter(client, keys).write(columns)


async def _assert_exact(reader: ViewReader, days: dict[DayKey, DayUsage], edges: list[int]) -> None:
    view = await reader.usage("acme", edges)
    for app in ("alpha", "bot", "zeta"):
        for start, end in pairwise(edges):
            assert view.apps[app].between(start, end) == _brute(days, app, start, end)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_usage_before_every_edge_is_exact_narrow_and_wide(backend: str) -> None:
    namespace = new_env("reads", backend)
    client = namespace.view_client()
    keys = namespace.view_keys()
    rng = random.Random(11)
    days = _history(rng)
    try:
        await _complete_view(client, keys, days)
        for cache in (0, 1 << 22):
            reader = ViewReader(client, keys, namespace.partitions, cache)
            for _ in range(3):
                await _assert_exact(reader, days, _edges(rng))
        # Rows are narrow where every day fits 64 bits; the month of the wide day (March 8)
        # is wide for that app only.
        march = 2026 * 12 + 2
        assert await client.hstrlen(keys.day_totals("acme", march), "alpha") == 31 * NARROW_SIZE
        assert await client.hstrlen(keys.day_totals("acme", march), "bot") == 31 * ENTRY_SIZE
    finally:
        await client.aclose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_days_written_before_they_carried_bucket_counts_read_the_same(backend: str) -> None:
    namespace = new_env("legacy", backend)
    client = namespace.view_client()
    keys = namespace.view_keys()
    rng = random.Random(12)
    days = _history(rng)
    try:
        await _complete_view(client, keys, days)
        for key, usage in days.items():
            month, day_of_month = month_day(key.day)
            legacy = without_counts(encode(usage.columns())[0])
            field = day_field(key.app_id, day_of_month)
            assert await client.hset(keys.day_slots("acme", month), field, legacy) == 0
        await _assert_exact(ViewReader(client, keys, namespace.partitions, 0), days, _edges(rng))
    finally:
        await client.aclose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_narrow_month_row_widens_when_a_wide_day_arrives(backend: str) -> None:
    namespace = new_env("widen", backend)
    client = namespace.view_client()
    keys = namespace.view_keys()
    writer = ViewWriter(client, keys)
    reader = ViewReader(client, keys, namespace.partitions, 0)
    first = DayKey("acme", "bot", FIRST_DAY)  # 2026-02-16
    later = DayKey("acme", "bot", FIRST_DAY + 5)
    month = 2026 * 12 + 1
    span = [FIRST_DAY * DAY_MS, (FIRST_DAY + 6) * DAY_MS]
    try:
        await _complete_view(client, keys, {})
        assert await writer.write([(first, DayUsage(1, {10: Bucket(3, 4_000_000)}).columns())])
        assert await client.hstrlen(keys.day_totals("acme", month), "bot") == 31 * NARROW_SIZE
        assert await writer.write([(later, DayUsage(1, {90: Bucket(1, WIDE)}).columns())])
        assert await client.hstrlen(keys.day_totals("acme", month), "bot") == 31 * ENTRY_SIZE
        view = await reader.usage("acme", span)
        assert view.apps["bot"].between(*span) == (2, 4, 4_000_000 + WIDE)
        # A narrow day written into the wide row is widened to fit it.
        assert await writer.write([(first, DayUsage(2, {10: Bucket(5, 1)}).columns())])
        view = await reader.usage("acme", span)
        assert view.apps["bot"].between(*span) == (2, 6, 1 + WIDE)
    finally:
        await client.aclose()
