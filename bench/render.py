"""What the API's math and rendering cost per one-year daily per-app answer: no Redis, no HTTP.

    python -m bench.render [--accounts N] [--repeats R]

Builds each account's 10 apps x 400 days in memory the way ``creditflow bench --scale`` shapes
them (30% of the 15-minute buckets non-empty, 1-20 calls and up to 50 credits each), then
times :func:`core.usage.render_usage` on the phase's one-year query (local dates ``[D - 365
days, D)`` with ``D`` in the last month, ``window=day&group_by=app``) for every account, each
in a random zone of the same 20 as ``bench/scale_queries.lua``. Reports the fastest of
``R`` passes (the least disturbed by other work on the machine) and their median, in ms per
answer. The rest of an answer's CPU (reading Redis, HTTP) is the view phase's to measure.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time

from bench.scale_build import History, day_templates
from core.days import DayUsage, iso_day
from core.usage import (
    AppDays,
    SlotPrefix,
    Totals,
    edge_parts,
    parse_usage_query,
    query_edges,
    render_usage,
)

ZONES = (
    "UTC", "Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles",
    "America/Sao_Paulo", "Asia/Seoul", "Asia/Tokyo", "Asia/Shanghai", "Australia/Sydney",
    "Asia/Kolkata", "Asia/Kathmandu", "Australia/Eucla", "Pacific/Chatham", "Australia/Adelaide",
    "America/St_Johns", "Asia/Tehran", "Asia/Kabul", "Asia/Yangon", "Australia/Lord_Howe",
)  # fmt: skip


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
        inside = [edge for edge in edge_parts(query_edges(query)) if edge.slot]
        apps = {}
        for app in range(history.apps):
            days = {
                day: DayUsage(1, rng.choice(templates).slots)
                for day in range(history.first_day, history.last_day)
            }
            # As the view reader hands them over: month prefixes, and per month the usage of
            # each edge's day before it (what read_days.lua cuts out of the day values).
            edges: dict[int, dict[tuple[int, int], Totals]] = {}
            for edge in inside:
                if edge.day in days:
                    before = SlotPrefix(days[edge.day].slots).before(edge.slot)
                    edges.setdefault(edge.month, {})[(edge.day, edge.slot)] = before
            apps[f"app-{app:02d}"] = AppDays(AppDays.from_days(days).months, edges)
        cases.append((query, apps))
    for query, apps in cases:  # warm the caches of zone edges an API process keeps warm too
        render_usage(query, apps)
    # As the API process does (api/app.py): the built histories out of the collector's way,
    # which would otherwise walk them all during the timing.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    passes = []
    for _ in range(repeats):
        started = time.process_time()
        for query, apps in cases:
            render_usage(query, apps)
        passes.append(1000 * (time.process_time() - started) / len(cases))
    return {
        "accounts": accounts,
        "answer_bytes": len(render_usage(*cases[0])),
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
