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
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import throughput
from bench.access import run_access
from bench.latency import plot_freshness, run_latency
from bench.namespace import RESULTS, ROOT, STATE, Namespace, free_port
from bench.query import run_query
from bench.scale import run_scale
from bench.scale_build import History
from bench.state_scale import ScaleSizes, expiry_figures, run_state_scale

TARGETS = {
    "batch_events_per_second": 170_000,
    "batch_vs_quix": 6.0,
    "single_events_per_second": 50_000,
    "single_vs_faust": 7.0,
    "single_vs_quix": 2.0,
    "freshness_p99_ms": 200.0,
    "alert_p99_ms": 1000.0,
    "query_p99_ms": 25.0,
    "access_p99_ms": 2.0,
}


@dataclass(frozen=True)
class Sizes:
    """How much work each phase does."""

    batch_events: int = 1_500_000
    batch_size: int = 500
    single_events: int = 300_000
    latency_rate: float = 5000.0
    latency_batch: int = 1
    latency_seconds: float = 40.0
    alert_accounts: int = 150
    query_seconds: int = 10
    query_clients: int = 50
    api_workers: int = 1
    access_rate: float = 2000.0
    access_clients: int = 50
    access_seconds: int = 20
    access_accounts: int = 1000
    access_api_workers: int = 1


QUICK = Sizes(
    60_000, 500, 20_000, 1000.0, 1, 12.0, 20, 3, 50, 1, access_seconds=3, access_accounts=100
)
PHASE_TRIES = 2


def _step(number: int, total: int, text: str) -> float:
    print(f"[{number}/{total}] {text} ...  (load average {os.getloadavg()[0]:.2f})", flush=True)
    return time.monotonic()


def _done(started: float, text: str) -> None:
    print(f"      {text}  ({time.monotonic() - started:.0f} s)", flush=True)


def _phase(results: dict[str, Any], key: str, measure: Callable[[], Any]) -> bool:
    """Run one phase into ``results[key]``, retried; a phase that keeps failing is recorded
    with its reason (``{"failed": ...}``) and the run goes on. True if it produced figures."""
    reason = ""
    loads = [round(os.getloadavg()[0], 2)]
    for number in range(1, PHASE_TRIES + 1):
        try:
            results[key] = measure()
        except Exception as error:  # any failure is reported, none ends the benchmark
            reason = f"{type(error).__name__}: {error}"[:300]
            print(f"      attempt {number} failed: {reason}", flush=True)
            continue
        loads.append(round(os.getloadavg()[0], 2))
        results.setdefault("load_average", {})[key] = loads
        return True
    results[key] = {"failed": reason}
    loads.append(round(os.getloadavg()[0], 2))
    results.setdefault("load_average", {})[key] = loads
    return False


def _throughput(label: str, events: int, batch: int, skip_quix: bool) -> list[dict[str, Any]]:
    """Every subject on one preloaded topic (each retried on its own)."""
    namespace = throughput.prepare(label, events, batch)
    subjects: list[tuple[str, Callable[[Namespace], throughput.Run]]] = [
        ("raw aiokafka + parse", lambda ns: throughput.raw_aiokafka(ns, events)),
        ("creditflow worker", lambda ns: throughput.creditflow_worker(ns, events)),
    ]
    if not skip_quix:
        subjects.append(("quix streams (same sums)", lambda ns: throughput.quix(ns, events)))
    subjects.append(
        ("faust no-op agent", lambda ns: throughput.faust_noop(ns, events // batch, batch))
    )
    return [throughput.attempt(name, namespace, fn).to_json() for name, fn in subjects]


def _rates(rows: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{row['subject']}: "
        + (f"FAILED ({row['failed']})" if row["failed"] else f"{row['events_per_second']:,}/s")
        for row in rows
    )


def run(sizes: Sizes, skip_quix: bool = False) -> dict[str, Any]:
    """Every phase; returns the result document (a failed phase holds its reason)."""
    results: dict[str, Any] = {"sizes": sizes.__dict__}
    total = 5

    started = _step(
        1, total, f"batch records: {sizes.batch_events:,} events in records of {sizes.batch_size}"
    )
    if _phase(
        results,
        "batch",
        lambda: _throughput("batch", sizes.batch_events, sizes.batch_size, skip_quix),
    ):
        _done(started, _rates(results["batch"]))

    started = _step(2, total, f"single-event records: {sizes.single_events:,}")
    if _phase(results, "single", lambda: _throughput("single", sizes.single_events, 1, skip_quix)):
        _done(started, _rates(results["single"]))

    records = "single-event records" if sizes.latency_batch == 1 else "records"
    started = _step(
        3,
        total,
        f"freshness and alert latency at {sizes.latency_rate:,.0f} events/s in {records} of "
        f"{sizes.latency_batch} for {sizes.latency_seconds:.0f} s",
    )

    def latency() -> dict[str, Any]:
        namespace = Namespace("latency")
        namespace.flush_redis()
        return asyncio.run(
            run_latency(
                namespace,
                sizes.latency_rate,
                sizes.latency_batch,
                sizes.latency_seconds,
                sizes.alert_accounts,
                free_port(),
            )
        )

    if _phase(results, "latency", latency):
        _done(
            started,
            f"freshness p99 {results['latency']['freshness']['p99_ms']} ms, "
            f"alert p99 {results['latency']['alert_latency']['p99_ms']} ms",
        )

    started = _step(
        4,
        total,
        f"query latency (cache hit): one 31-day daily per-app series, {sizes.query_clients} clients",
    )

    def query() -> dict[str, Any]:
        namespace = Namespace("query")
        namespace.flush_redis()
        return run_query(
            namespace, sizes.query_clients, sizes.query_seconds, sizes.api_workers, free_port()
        )

    if _phase(results, "query", query):
        _done(
            started,
            f"p99 {results['query']['p99_ms']} ms at "
            f"{results['query']['requests_per_second']:,} req/s",
        )

    access_phase(results, sizes, 5, total)
    return results


def access_phase(results: dict[str, Any], sizes: Sizes, number: int, total: int) -> None:
    """The access check at a fixed rate over random accounts (bench/access.py), retried."""
    started = _step(
        number,
        total,
        f"access check: {sizes.access_rate:,.0f} req/s paced, {sizes.access_clients} clients, "
        f"{sizes.access_accounts:,} accounts",
    )

    def access() -> dict[str, Any]:
        namespace = Namespace("access")
        namespace.flush_redis()
        return run_access(
            namespace,
            sizes.access_rate,
            sizes.access_clients,
            sizes.access_seconds,
            sizes.access_accounts,
            free_port(),
            sizes.access_api_workers,
        )

    if _phase(results, "access", access):
        figures = results["access"]["access"]
        _done(started, f"p99 {figures['p99_ms']} ms at {figures['requests_per_second']:,} req/s")


def access_verdicts(result: dict[str, Any]) -> list[Verdict]:
    """The access phase's rows of the table (one without a figure if the phase failed)."""
    if "access" not in result:
        return [("access p99 ms", "FAILED", f"p99 <= {TARGETS['access_p99_ms']}", None)]
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


Verdict = tuple[str, str, str, bool | None]
"""``(metric, measured, target, met)``; ``met`` None: no figure (the phase or a subject failed)."""


def _row(rows: Any, subject: str) -> dict[str, Any] | None:
    if not isinstance(rows, list):
        return None
    return next((row for row in rows if row["subject"].startswith(subject)), None)


def _rate(rows: Any, subject: str) -> float | None:
    row = _row(rows, subject)
    if row is None or row.get("failed"):
        return None
    return float(row["events_per_second"])


def _throughput_verdicts(
    results: dict[str, Any], phase: str, label: str, floor_key: str, ratios: list[tuple[str, str]]
) -> list[Verdict]:
    rows = results.get(phase)
    ours = _rate(rows, "creditflow")
    floor = TARGETS[floor_key]
    verdicts: list[Verdict] = [
        (
            f"{label}, events/s (one worker, events of the last 2 min)",
            "FAILED" if ours is None else f"{ours:,.0f}",
            f">= {floor:,.0f}",
            None if ours is None else ours >= floor,
        )
    ]
    for subject, target_key in ratios:
        if subject == "quix" and _row(rows, "quix") is None and isinstance(rows, list):
            continue  # --skip-quix
        theirs = _rate(rows, subject)
        name = {
            "raw": "raw aiokafka + parse",
            "quix": "Quix Streams, same sums",
            "faust": "bare Faust no-op agent",
        }[subject]
        target = f">= {TARGETS[target_key]}x" if target_key else "(ceiling)"
        if ours is None or theirs is None:
            verdicts.append((f"  vs {name}", "n/a", target, None if target_key else True))
            continue
        ratio = ours / theirs
        met = ratio >= TARGETS[target_key] if target_key else True
        verdicts.append((f"  vs {name} ({theirs:,.0f}/s)", f"{ratio:.2f}x", target, met))
    return verdicts


def verdicts(results: dict[str, Any]) -> list[Verdict]:
    """``(metric, measured, target, met)`` rows; a failed phase gives rows without a figure."""
    rows = _throughput_verdicts(
        results,
        "batch",
        "batch records",
        "batch_events_per_second",
        [("quix", "batch_vs_quix"), ("raw", "")],
    )
    rows += _throughput_verdicts(
        results,
        "single",
        "single-event records",
        "single_events_per_second",
        [("faust", "single_vs_faust"), ("quix", "single_vs_quix"), ("raw", "")],
    )
    latency, query = results.get("latency", {}), results.get("query", {})
    if "freshness" in latency:
        fresh, alert = latency["freshness"], latency["alert_latency"]
        rate = latency["offered_events_per_second"]
        size = "single-event records" if latency["batch"] == 1 else f"records of {latency['batch']}"
        rows += [
            (
                f"freshness p50/p95/p99 ms @ {rate:,.0f}/s, {size}",
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
        ]
    else:
        rows += [
            ("freshness p99 ms", "FAILED", f"p99 <= {TARGETS['freshness_p99_ms']:.0f}", None),
            ("alert latency p99 ms", "FAILED", f"p99 <= {TARGETS['alert_p99_ms']:.0f}", None),
        ]
    if "p99_ms" in query:
        rows.append(
            (
                f"query p50/p99 ms, {query['clients']} clients (cache hit: one query repeated)",
                f"{query['p50_ms']}/{query['p99_ms']}",
                f"p99 <= {TARGETS['query_p99_ms']:.0f}",
                query["p99_ms"] <= TARGETS["query_p99_ms"],
            )
        )
    else:
        rows.append(("query p99 ms", "FAILED", f"p99 <= {TARGETS['query_p99_ms']:.0f}", None))
    worker = _row(results.get("batch"), "creditflow")
    if worker is not None and not worker.get("failed"):
        rows.append(
            ("worker peak RSS (batch run)", f"{worker['peak_rss_bytes'] / 2**20:.0f} MiB", "", True)
        )
    if "redis_bytes_per_account_app_day" in query:
        rows.append(
            (
                "Redis bytes per (account, app, day)",
                f"{query['redis_bytes_per_account_app_day']:,}",
                "",
                True,
            )
        )
    if "access" in results:
        rows += access_verdicts(results["access"])
    return rows


def failures(results: dict[str, Any]) -> list[str]:
    """Why each failed phase or subject has no figure."""
    lines = []
    for phase in ("batch", "single", "latency", "query", "access"):
        value = results.get(phase)
        if isinstance(value, dict) and value.get("failed"):
            lines.append(f"{phase}: {value['failed']}")
        elif isinstance(value, list):
            lines += [f"{phase} / {r['subject']}: {r['failed']}" for r in value if r["failed"]]
    return lines


def table(results: dict[str, Any]) -> str:
    """The terminal table."""
    lines = [f"{'metric':<50}{'measured':>20}  {'target':<14}", "-" * 90]
    for metric, measured, target, met in verdicts(results):
        if met is None:
            mark = "FAILED"
        elif not target or target.startswith("("):
            mark = ""
        else:
            mark = "ok" if met else "MISSED"
        lines.append(f"{metric:<50}{measured:>20}  {target:<14}{mark}")
    reasons = failures(results)
    if reasons:
        lines += ["", "failed (after retries):", *(f"  {reason}" for reason in reasons)]
    lines += ["", "throughput runs (events/s):"]
    for phase in ("batch", "single"):
        rows = results.get(phase)
        for row in rows if isinstance(rows, list) else []:
            figure = "FAILED" if row["failed"] else f"{row['events_per_second']:>12,}"
            lines.append(
                f"  {phase:<7}{row['subject']:<28}{figure:>12}  ({row['events']:,} events in "
                f"{row['seconds']} s, load average {row['load_average']})"
            )
    loads = results.get("load_average", {})
    if loads:
        lines += [
            "",
            "load average (1 min) at each phase's start and end, on a shared machine: "
            + ", ".join(f"{phase} {' -> '.join(map(str, pair))}" for phase, pair in loads.items()),
        ]
    return "\n".join(lines)


def _processor() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return platform.processor()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor()


def _uptime() -> str:
    """``uptime``'s line: the machine is shared, so its load goes with every run's figures."""
    done = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _machine() -> dict[str, Any]:
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": _processor(),
        "load_average_at_end": os.getloadavg(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def scale_main(args: argparse.Namespace) -> int:
    """``creditflow bench --scale``: the view and the worker state at size."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    if args.scale_phase in ("all", "view"):
        results["view"] = _view_scale(args)
    if args.scale_phase in ("all", "state"):
        subprocess.run([str(ROOT / "scripts" / "stack"), "up", "kafka", "redis"], check=True)
        sizes = ScaleSizes(ids=args.scale_ids)
        started = _step(1, 1, f"worker state at size: {sizes.ids:,} ids spread over 30 days")
        results["state"] = run_state_scale(sizes)
        _done(started, "done")
    if args.scale_phase == "expiry":
        started = _step(1, 1, f"dropping a day of ids past the horizon at {args.scale_ids:,} ids")
        results["expiry"] = expiry_figures(args.scale_ids)
        _done(started, "done")
    results["machine"] = {**_machine(), "load_average_at_end": os.getloadavg()}
    document = json.dumps(results, indent=2)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    (RESULTS / f"scale-{stamp}.json").write_text(document)
    (RESULTS / "scale-latest.json").write_text(document)
    print(document)
    return 0


def _view_scale(args: argparse.Namespace) -> dict[str, Any]:
    """The view at size, on one Redis and on the Redis Cluster (bench/scale.py)."""
    services = ["up", "kafka", "redis"] + ([] if args.no_cluster else ["rcluster"])
    subprocess.run([str(ROOT / "scripts" / "stack"), *services], check=True)
    history = History(accounts=args.scale_accounts)
    common = {"CREDITFLOW_LOG_LEVEL": "info"}
    single = Namespace("scale", redis_db=12, extra={**common, "CREDITFLOW_VIEW_PREFIX": "cf"})
    single.flush_redis()
    cluster = None
    rebuild_at = None
    if not args.no_cluster:
        port = int(os.environ.get("REDIS_CLUSTER_PORT", "7000"))
        cluster = Namespace(
            "scalec",
            extra={
                **common,
                "REDIS_CLUSTER_NODES": ",".join(f"127.0.0.1:{port + i}" for i in range(6)),
                "CREDITFLOW_VIEW_PREFIX": f"bench-{single.tag}",
                "CREDITFLOW_BUCKETS_TOPIC": single.settings().buckets_topic,
            },
        )
        # The rebuild rate on the cluster, from a topic of its own (fewer accounts: a rebuild
        # of the whole history takes ~4x as long as on one node on this machine).
        small = Namespace(
            "scaler", extra={**cluster.extra, "CREDITFLOW_VIEW_PREFIX": f"benchr-{single.tag}"}
        )
        small.extra.pop("CREDITFLOW_BUCKETS_TOPIC")
        rebuild_at = (small, History(accounts=args.cluster_rebuild_accounts))
    load_at_start = os.getloadavg()
    started = _step(1, 1, f"view at size: {history}")
    results = run_scale(
        single,
        cluster,
        history,
        free_port(),
        args.scale_seconds,
        tuple(args.scale_think_ms),
        rebuild_at,
        tuple(args.scale_api_workers),
    )
    results["load_average_at_start"] = load_at_start
    _done(started, "done")
    return results


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
    parser.add_argument(
        "--scale",
        action="store_true",
        help="the scale phases instead: the view (1,000 accounts x 10 apps x 400 days) and the "
        "worker state (20M ids)",
    )
    parser.add_argument("--scale-accounts", type=int, default=History.accounts)
    parser.add_argument("--scale-seconds", type=int, default=30, help="per query run")
    parser.add_argument(
        "--scale-think-ms",
        type=int,
        nargs=2,
        default=[1000, 2000],
        metavar=("RANDOM", "YEAR"),
        help="dashboards' longest pause after an answer (random 0..N ms): random mix, year series",
    )
    parser.add_argument("--no-cluster", action="store_true", help="--scale on one Redis only")
    parser.add_argument(
        "--scale-api-workers",
        type=int,
        nargs="+",
        default=[1],
        help="API processes of the view's query runs; several counts run the queries once per "
        "count on the same history",
    )
    parser.add_argument("--cluster-rebuild-accounts", type=int, default=100)
    parser.add_argument(
        "--scale-phase",
        choices=("all", "view", "state", "expiry"),
        default="all",
        help="with --scale (expiry: only the day-drop timing of the state phase)",
    )
    parser.add_argument("--scale-ids", type=int, default=ScaleSizes.ids, help="state phase")
    args = parser.parse_args(argv)
    # Every phase works in fresh namespaces: what earlier runs' workers stored is only disk.
    shutil.rmtree(STATE, ignore_errors=True)
    if args.scale:
        return scale_main(args)
    subprocess.run([str(ROOT / "scripts" / "stack"), "up", "kafka", "redis"], check=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    uptime_before = _uptime()
    sizes = QUICK if args.quick else Sizes()
    if args.api_workers:
        sizes = replace(sizes, access_api_workers=args.api_workers)
    if args.only == "access":
        alone: dict[str, Any] = {}
        access_phase(alone, sizes, 1, 1)
        alone["machine"] = {**_machine(), "uptime_before": uptime_before, "uptime_after": _uptime()}
        (RESULTS / "access-latest.json").write_text(json.dumps(alone, indent=2))
        for metric, measured, target, met in access_verdicts(alone["access"]):
            mark = (
                "FAILED"
                if met is None
                else ""
                if target.startswith("(")
                else "ok"
                if met
                else "MISSED"
            )
            print(f"{metric:<50}{measured:>20}  {target:<14}{mark}")
        print(f"\nJSON: {RESULTS / 'access-latest.json'}")
        return 0
    results = run(sizes, skip_quix=args.skip_quix)
    results["machine"] = {**_machine(), "uptime_before": uptime_before, "uptime_after": _uptime()}
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    document = json.dumps(results, indent=2)
    (RESULTS / f"bench-{stamp}.json").write_text(document)
    (RESULTS / "latest.json").write_text(document)
    if not args.quick and "freshness_series" in results.get("latency", {}):
        plot_freshness(
            results["latency"]["freshness_series"],
            TARGETS["freshness_p99_ms"],
            Path(args.plot),
            f"freshness during the run, {results['latency']['offered_events_per_second']:,.0f} events/s offered",
        )
    print()
    print(table(results))
    print(f"\nuptime before: {uptime_before}\nuptime after:  {results['machine']['uptime_after']}")
    print(f"\nJSON: {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
