"""``make bench`` / ``creditflow bench``: every target of DESIGN.md section 7, beside baselines.

Each phase uses fresh topics on the same local broker. Results: a table on the terminal,
JSON in bench/results/, and the freshness plot (PNG).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import dedup_size, throughput
from bench.access import run_access
from bench.latency import plot_freshness, run_latency
from bench.namespace import RESULTS, ROOT, Namespace
from bench.query import run_query

TARGETS = {
    "batch_events_per_second": 100_000,
    "batch_vs_quix": 2.0,
    "single_vs_faust": 0.8,
    "freshness_p99_ms": 500.0,
    "alert_p99_ms": 1000.0,
    "query_p99_ms": 25.0,
    "access_p99_ms": 2.0,
}


@dataclass(frozen=True)
class Sizes:
    """How much work each phase does."""

    batch_events: int = 600_000
    batch_size: int = 500
    single_events: int = 100_000
    latency_rate: float = 5000.0
    latency_batch: int = 20
    latency_seconds: float = 40.0
    alert_accounts: int = 150
    query_seconds: int = 10
    query_clients: int = 50
    api_workers: int = 1
    dedup_ids: int = 300_000
    access_rate: float = 2000.0
    access_clients: int = 50
    access_seconds: int = 20
    access_accounts: int = 1000
    access_api_workers: int = 1


QUICK = Sizes(60_000, 500, 10_000, 1000.0, 20, 12.0, 20, 3, 50, 1, 20_000, 2000.0, 50, 3, 100)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _step(number: int, total: int, text: str) -> float:
    print(f"[{number}/{total}] {text} ...", flush=True)
    return time.monotonic()


def _done(started: float, text: str) -> None:
    print(f"      {text}  ({time.monotonic() - started:.0f} s)", flush=True)


def run(sizes: Sizes, skip_quix: bool = False) -> dict[str, Any]:
    """Every phase; returns the result document."""
    results: dict[str, Any] = {"sizes": sizes.__dict__}
    total = 6

    started = _step(
        1, total, f"batch records: {sizes.batch_events:,} events in records of {sizes.batch_size}"
    )
    namespace = throughput.prepare("batch", sizes.batch_events, sizes.batch_size)
    runs = [
        throughput.raw_aiokafka(namespace, sizes.batch_events),
        throughput.creditflow_worker(namespace, sizes.batch_events),
    ]
    if not skip_quix:
        runs.append(throughput.quix(namespace, sizes.batch_events))
    runs.append(
        throughput.faust_noop(namespace, sizes.batch_events // sizes.batch_size, sizes.batch_size)
    )
    results["batch"] = [run.to_json() for run in runs]
    _done(started, ", ".join(f"{run.subject}: {run.rate:,.0f}/s" for run in runs))

    started = _step(2, total, f"single-event records: {sizes.single_events:,}")
    namespace = throughput.prepare("single", sizes.single_events, 1)
    runs = [
        throughput.raw_aiokafka(namespace, sizes.single_events),
        throughput.creditflow_worker(namespace, sizes.single_events),
        throughput.faust_noop(namespace, sizes.single_events, 1),
    ]
    results["single"] = [run.to_json() for run in runs]
    _done(started, ", ".join(f"{run.subject}: {run.rate:,.0f}/s" for run in runs))

    started = _step(
        3,
        total,
        f"freshness and alert latency at {sizes.latency_rate:,.0f} events/s for {sizes.latency_seconds:.0f} s",
    )
    namespace = Namespace("latency")
    namespace.flush_redis()
    results["latency"] = asyncio.run(
        run_latency(
            namespace,
            sizes.latency_rate,
            sizes.latency_batch,
            sizes.latency_seconds,
            sizes.alert_accounts,
            _free_port(),
        )
    )
    _done(
        started,
        f"freshness p99 {results['latency']['freshness']['p99_ms']} ms, "
        f"alert p99 {results['latency']['alert_latency']['p99_ms']} ms",
    )

    started = _step(
        4, total, f"query latency: 31-day daily per-app series, {sizes.query_clients} clients"
    )
    namespace = Namespace("query")
    namespace.flush_redis()
    results["query"] = run_query(
        namespace, sizes.query_clients, sizes.query_seconds, sizes.api_workers, _free_port()
    )
    _done(
        started,
        f"p99 {results['query']['p99_ms']} ms at {results['query']['requests_per_second']:,} req/s",
    )

    started = _step(5, total, "dedup store size")
    results["dedup"] = dedup_size.measure(sizes.dedup_ids)
    _done(started, f"{results['dedup']['memory_bytes_per_id']} bytes per id in memory")

    results["access"] = access_phase(sizes, 6, total)
    return results


def access_phase(sizes: Sizes, number: int, total: int) -> dict[str, Any]:
    """The access check at a fixed rate over random accounts (bench/access.py)."""
    started = _step(
        number,
        total,
        f"access check: {sizes.access_rate:,.0f} req/s paced, {sizes.access_clients} clients, "
        f"{sizes.access_accounts:,} accounts",
    )
    namespace = Namespace("access")
    namespace.flush_redis()
    result = run_access(
        namespace,
        sizes.access_rate,
        sizes.access_clients,
        sizes.access_seconds,
        sizes.access_accounts,
        _free_port(),
        sizes.access_api_workers,
    )
    access = result["access"]
    _done(started, f"p99 {access['p99_ms']} ms at {access['requests_per_second']:,} req/s")
    return result


def access_verdicts(result: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """The access phase's rows of the table."""
    access, billing = result["access"], result["billing_baseline"]
    clean = access["non_2xx"] == 0 and access["socket_errors"] == 0
    return [
        (
            f"access p50/p99 ms @ {access['requests_per_second']:,}/s, {result['clients']} clients, "
            f"{result['api_workers']} API",
            f"{access['p50_ms']}/{access['p99_ms']}",
            f"p99 <= {TARGETS['access_p99_ms']}",
            clean
            and access["p99_ms"] <= TARGETS["access_p99_ms"]
            and access["requests_per_second"] >= 0.98 * access["offered_per_second"],
        ),
        (
            "  /billing (same used, framework path)",
            f"{billing['p50_ms']}/{billing['p99_ms']}",
            "(baseline)",
            True,
        ),
    ]


def _rate(rows: list[dict[str, Any]], subject: str) -> float:
    return float(
        next(row["events_per_second"] for row in rows if row["subject"].startswith(subject))
    )


def verdicts(results: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """``(metric, measured, target, met)`` rows."""
    batch, single = results["batch"], results["single"]
    ours_batch, ours_single = _rate(batch, "creditflow"), _rate(single, "creditflow")
    rows = [
        (
            "batch records, events/s (one worker)",
            f"{ours_batch:,.0f}",
            f">= {TARGETS['batch_events_per_second']:,}",
            ours_batch >= TARGETS["batch_events_per_second"],
        ),
        (
            "  vs raw aiokafka + parse",
            f"{ours_batch / _rate(batch, 'raw'):.2f}x",
            "(ceiling)",
            True,
        ),
    ]
    if any(row["subject"].startswith("quix") for row in batch):
        ratio = ours_batch / _rate(batch, "quix")
        rows.append(
            (
                "  vs Quix Streams, same sums",
                f"{ratio:.2f}x",
                f">= {TARGETS['batch_vs_quix']}x",
                ratio >= TARGETS["batch_vs_quix"],
            )
        )
    faust_ratio = ours_single / _rate(single, "faust")
    rows += [
        ("single-event records, events/s", f"{ours_single:,.0f}", "", True),
        (
            "  vs bare Faust no-op agent",
            f"{faust_ratio:.2f}x",
            f">= {TARGETS['single_vs_faust']}x",
            faust_ratio >= TARGETS["single_vs_faust"],
        ),
        (
            "  vs raw aiokafka + parse",
            f"{ours_single / _rate(single, 'raw'):.2f}x",
            "(ceiling)",
            True,
        ),
    ]
    latency, query = results["latency"], results["query"]
    fresh, alert = latency["freshness"], latency["alert_latency"]
    rows += [
        (
            f"freshness p50/p95/p99 ms @ {latency['offered_events_per_second']:,.0f}/s",
            f"{fresh['p50_ms']}/{fresh['p95_ms']}/{fresh['p99_ms']}",
            f"p99 <= {TARGETS['freshness_p99_ms']:.0f}",
            fresh["p99_ms"] <= TARGETS["freshness_p99_ms"],
        ),
        (
            "alert latency p50/p99 ms",
            f"{alert['p50_ms']}/{alert['p99_ms']}",
            f"p99 <= {TARGETS['alert_p99_ms']:.0f}",
            alert["p99_ms"] <= TARGETS["alert_p99_ms"],
        ),
        (
            f"query p50/p99 ms, {query['clients']} clients",
            f"{query['p50_ms']}/{query['p99_ms']}",
            f"p99 <= {TARGETS['query_p99_ms']:.0f}",
            query["p99_ms"] <= TARGETS["query_p99_ms"],
        ),
        (
            "worker peak RSS (batch run)",
            f"{next(r['peak_rss_bytes'] for r in results['batch'] if r['subject'].startswith('creditflow')) / 2**20:.0f} MiB",
            "",
            True,
        ),
        (
            "Redis bytes per (account, app, day)",
            f"{query['redis_bytes_per_account_app_day']:,}",
            "",
            True,
        ),
        (
            "dedup bytes per id (memory / state log)",
            f"{results['dedup']['memory_bytes_per_id']} / {results['dedup']['state_log_bytes_per_id']}",
            "",
            True,
        ),
    ]
    if "access" in results:
        rows += access_verdicts(results["access"])
    return rows


def table(results: dict[str, Any]) -> str:
    """The terminal table."""
    lines = [f"{'metric':<46}{'measured':>22}  {'target':<14}", "-" * 88]
    for metric, measured, target, met in verdicts(results):
        mark = "" if not target or target.startswith("(") else ("ok" if met else "MISSED")
        lines.append(f"{metric:<46}{measured:>22}  {target:<14}{mark}")
    lines.append("")
    lines.append("throughput runs (events/s):")
    for phase in ("batch", "single"):
        for row in results[phase]:
            lines.append(
                f"  {phase:<7}{row['subject']:<28}{row['events_per_second']:>12,}  ({row['events']:,} events in {row['seconds']} s)"
            )
    return "\n".join(lines)


def _processor() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return platform.processor()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor()


def _machine() -> dict[str, Any]:
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": _processor(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="creditflow bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="a small smoke run (figures not meaningful)"
    )
    parser.add_argument("--skip-quix", action="store_true")
    parser.add_argument(
        "--only", choices=["access"], help="run one phase alone (results in <phase>-latest.json)"
    )
    parser.add_argument(
        "--api-workers", type=int, help="API processes of the access phase (default 1)"
    )
    parser.add_argument("--plot", default=str(ROOT / "docs" / "freshness.png"))
    args = parser.parse_args(argv)
    subprocess.run([str(ROOT / "scripts" / "stack"), "up", "kafka", "redis"], check=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    sizes = QUICK if args.quick else Sizes()
    if args.api_workers:
        sizes = replace(sizes, access_api_workers=args.api_workers)
    if args.only == "access":
        alone = {"access": access_phase(sizes, 1, 1), "machine": _machine()}
        (RESULTS / "access-latest.json").write_text(json.dumps(alone, indent=2))
        for metric, measured, target, met in access_verdicts(alone["access"]):
            mark = "" if target.startswith("(") else ("ok" if met else "MISSED")
            print(f"{metric:<46}{measured:>22}  {target:<14}{mark}")
        print(f"\nJSON: {RESULTS / 'access-latest.json'}")
        return 0
    results = run(sizes, skip_quix=args.skip_quix)
    results["machine"] = _machine()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    document = json.dumps(results, indent=2)
    (RESULTS / f"bench-{stamp}.json").write_text(document)
    (RESULTS / "latest.json").write_text(document)
    if not args.quick:
        plot_freshness(
            results["latency"]["freshness_series"],
            500.0,
            Path(args.plot),
            f"freshness during the run, {results['latency']['offered_events_per_second']:,.0f} events/s offered",
        )
    print()
    print(table(results))
    print(f"\nJSON: {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
