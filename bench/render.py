"""What the API's decoding, math and rendering cost per one-year daily per-app answer: no
Redis, no HTTP.

    python -m bench.render [--accounts N] [--repeats R]

Builds each account's 10 apps x 400 days in memory the way ``creditflow bench --scale`` shapes
them (30% of the 15-minute buckets non-empty, 1-20 calls and up to 50 credits each), and the
bytes the view's read returns for the phase's one-year query (local dates ``[D - 365 days,
D)`` with ``D`` in the last month, ``window=day&group_by=app``, in a random zone of the same
20 as ``bench/scale_queries.lua``): per month and app, the month row and the edge records
``read_days.lua`` cuts. Then times what the API does with them: decode (as ``view.reader``
does for an uncached read), :func:`core.usage.render_usage`. Reports the fastest of ``R``
passes (the least disturbed by other work on the machine) and their median, in ms per answer.
The rest of an answer's CPU (the Redis call, HTTP) is the view phase's to measure.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time
from typing import NamedTuple

from bench.scale_build import History, day_templates
from core.days import DayUsage, iso_day
from core.usage import (
    SlotPrefix,
    UsageQuery,
    edge_parts,
    month_day,
    parse_usage_query,
    query_edges,
    render_usage,
)
from view.codec import DAYS_PER_MONTH, edge_usage, entries
from view.reader import usage_by_app

ZONES = (
    "UTC", "Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles",
    "America/Sao_Paulo", "Asia/Seoul", "Asia/Tokyo", "Asia/Shanghai", "Australia/Sydney",
    "Asia/Kolkata", "Asia/Kathmandu", "Australia/Eucla", "Pacific/Chatham", "Australia/Adelaide",
    "America/St_Johns", "Asia/Tehran", "Asia/Kabul", "Asia/Yangon", "Australia/Lord_Howe",
)  # fmt: skip


class _Month(NamedTuple):
    """One month of an account as the view's read returns it: bytes, per app."""

    month: int
    edges: tuple[tuple[int, int], ...]
    """The query's edges inside a day of this month, in order: one record each per app."""
    rows: dict[str, bytes]
    records: dict[str, bytes]


def _as_read(query: UsageQuery, apps: dict[str, dict[int, DayUsage]]) -> list[_Month]:
    """What ``read_days.lua`` returns for ``query`` over these histories (``UTC day -> day``)."""
    parts = edge_parts(query_edges(query))
    read = []
    for month in range(parts[0].month, parts[-1].month + 1):
        edges = tuple((edge.day, edge.slot) for edge in parts if edge.month == month and edge.slot)
        rows, records = {}, {}
        for name, days in apps.items():
            totals = [(0, 0, 0)] * DAYS_PER_MONTH
            for day, usage in days.items():
                if month_day(day)[0] == month:
                    totals[month_day(day)[1] - 1] = (len(usage.slots), *usage.total)
            rows[name] = entries(totals)
            records[name] = entries(
                [
                    SlotPrefix(days[day].slots).before(slot) if day in days else (0, 0, 0)
                    for day, slot in edges
                ]
            )
        read.append(_Month(month, edges, rows, records))
    return read


def answer(query: UsageQuery, read: list[_Month]) -> bytes:
    """The API's work on a read's reply (decoded as :class:`view.reader.ViewReader` does)."""
    months = {
        month: (rows, {name: edge_usage(blob, asked) for name, blob in records.items()})
        for month, asked, rows, records in read
    }
    return render_usage(query, usage_by_app(months))


def measure(accounts: int, repeats: int, seed: int = 7) -> dict[str, object]:
    """Time one-year answers for ``accounts`` random histories; ms per answer."""
    rng = random.Random(seed)
    history = History(accounts=accounts)
    templates = day_templates(history, rng)
    cases = []
    for account in range(accounts):
        end = history.last_day - rng.randint(1, 30)
        first, last = (iso_day(day) for day in (end - 365, end))
        query = parse_usage_query(
            f"acct-{account:04d}", first, last, rng.choice(ZONES), "day", "app", "UTC"
        )
        apps = {
            f"app-{app:02d}": {
                day: DayUsage(1, rng.choice(templates).slots)
                for day in range(history.first_day, history.last_day)
            }
            for app in range(history.apps)
        }
        cases.append((query, _as_read(query, apps)))
    for query, read in cases:  # warm the caches of zone edges an API process keeps warm too
        answer(query, read)
    # As the API process does (api/app.py): the built histories out of the collector's way,
    # which would otherwise walk them all during the timing.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    passes = []
    for _ in range(repeats):
        started = time.process_time()
        for query, read in cases:
            answer(query, read)
        passes.append(1000 * (time.process_time() - started) / len(cases))
    return {
        "accounts": accounts,
        "answer_bytes": len(answer(*cases[0])),
        "ms_per_answer_fastest": round(min(passes), 3),
        "ms_per_answer_median": round(statistics.median(passes), 3),
        "passes": repeats,
    }


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.render", description=__doc__)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(measure(args.accounts, args.repeats), indent=1))


if __name__ == "__main__":
    main()
