"""The serving view at size (``creditflow bench --scale``): years of history, many accounts.

History: ``accounts`` x ``apps`` x ``days`` (default 1,000 x 10 x 400) day values, about 30% of
their 15-minute buckets non-empty, ending today. It is built the way a wiped view is: day
records (format 2) are produced straight to the bucket topic (the worker's own path is measured
by the other phases), then a worker started on an empty view rebuilds it, which measures the
rebuild rate. Then, on one Redis and on the Redis Cluster of ``scripts/stack``:

* Redis memory per (account, app, day) and per non-empty bucket, and per dense day (96
  buckets, a sample written beside it);
* uncached queries with wrk (bench/scale_queries.lua says the rule), 50 connections, first
  back to back (the API's capacity), then as dashboards (a pause after each answer);
* a one-year daily per-app series, the same two ways;
* API RSS after every account has been queried, with the default cache.

Each run records the load average (the machine is shared: other processes' load moves the
tails) and the CPU the API process and the Redis primaries spent per request, which do not
depend on it as much. Building and memory are in bench/scale_build.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench import wrk as wrk_report
from bench.namespace import Namespace, Process, cpu_seconds, creditflow
from bench.scale_build import (
    History,
    copy_view,
    dense_sample,
    key_bytes,
    produce,
    rebuild,
    redis_cpu_seconds,
    used_memory,
)

TOKEN = "bench-admin-token"
SCRIPT = Path(__file__).with_name("scale_queries.lua")
_EPOCH = date(1970, 1, 1)


def wrk(
    port: int, history: History, mode: str, seconds: int, clients: int, think_ms: int
) -> dict[str, Any]:
    """One wrk run of scale_queries.lua; latency percentiles and rate."""
    env = {
        "CF_ACCOUNTS": str(history.accounts),
        "CF_FIRST": str(history.first_day * 86_400),
        "CF_LAST": str(history.last_day * 86_400),
        "CF_MODE": mode,
        "CF_THINK_MS": str(think_ms),
        "CF_TOKEN": TOKEN,
        "PATH": "/usr/bin:/bin",
    }
    output = subprocess.run(
        wrk_report.command(
            clients,
            seconds,
            "-s",
            str(SCRIPT),
            f"http://127.0.0.1:{port}",
        ),
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    requests = wrk_report.requests(output)
    return {
        "mode": mode,
        "clients": clients,
        "think_ms": think_ms,
        "seconds": seconds,
        "requests": requests,
        "requests_per_second": round(requests / seconds),
        "non_2xx": wrk_report.non_2xx(output),
        **wrk_report.percentiles(output),
    }


def _cpu_seconds(pid: int) -> float:
    """User and system CPU so far of a process and its children (``--workers`` N: the API
    processes, which the supervisor's own figures leave out until they exit)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sum(cpu_seconds(Path(f"/proc/{each}/stat")) for each in [pid, *map(int, children)])


def drained(pid: int, timeout: float = 60) -> None:
    """Wait until the API has finished what a stopped wrk left queued (its CPU stops moving).

    wrk stops with up to 50 requests in flight; back to back, those are ~50 one-year answers
    (~0.6 s of work) that the next run's first requests would queue behind.
    """
    deadline = time.monotonic() + timeout
    before = _cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = _cpu_seconds(pid)
        if now - before < 0.01:
            return
        before = now
    raise RuntimeError("the API stayed busy after wrk stopped")


def measured(
    api: Process, namespace: Namespace, port: int, history: History, *run: Any
) -> dict[str, Any]:
    """One wrk run with the CPU per request of the API and of Redis, and the load average."""
    drained(api.pid)
    api_before, redis_before = _cpu_seconds(api.pid), redis_cpu_seconds(namespace)
    result = wrk(port, history, *run)
    requests = max(result["requests"], 1)
    result["api_cpu_ms_per_request"] = round(
        (_cpu_seconds(api.pid) - api_before) * 1000 / requests, 2
    )
    result["redis_cpu_ms_per_request"] = round(
        (redis_cpu_seconds(namespace) - redis_before) * 1000 / requests, 2
    )
    result["load_average"] = [round(value, 2) for value in os.getloadavg()]
    return result


def _rss(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of the API: with ``--workers`` N, of each worker process (the largest)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found: dict[str, int] = {}
    for each in [int(child) for child in children] or [pid]:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":")[0], int(line.split()[1]) * 1024
                found[name] = max(found.get(name, 0), value)
    return found


def _wait_api(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the API did not become ready")


def every_account(port: int, history: History) -> None:
    """Each account once: its whole history as a daily per-app series (in Asia/Kolkata), the
    query that reads the most of an account."""
    first = _EPOCH + timedelta(days=history.first_day)
    last = _EPOCH + timedelta(days=history.last_day - 1)
    params = {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "tz": "Asia/Kolkata",
        "window": "day",
    }
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    ) as client:
        for account in range(history.accounts):
            response = client.get(f"/v1/accounts/acct-{account:04d}/usage", params=params)
            response.raise_for_status()


def queries(
    namespace: Namespace,
    history: History,
    port: int,
    seconds: int,
    think_ms: tuple[int, int],
    api_workers: int = 1,
) -> dict[str, Any]:
    """The query runs against one API process: uncached, then with the default cache."""
    found: dict[str, Any] = {}
    uncached = Namespace(
        namespace.label,
        namespace.redis_db,
        namespace.partitions,
        {**namespace.extra, "CREDITFLOW_VIEW_CACHE_BYTES": "0"},
        namespace.tag,
    )
    for label, space in (("uncached", uncached), ("default_cache", namespace)):
        api = Process(
            creditflow("api", "--port", str(port), "--workers", str(api_workers)),
            space,
            f"scale-api-{label}",
        )
        try:
            _wait_api(port)
            wrk(port, history, "random", 5, 50, 0)  # warm-up, discarded
            if label == "uncached":
                wrk(port, history, "year", 3, 50, 0)  # warm-up, discarded
                for name, mode, think in (
                    ("random_dashboards", "random", think_ms[0]),
                    ("year_dashboards", "year", think_ms[1]),
                    ("random_back_to_back", "random", 0),
                    ("year_back_to_back", "year", 0),
                ):
                    found[name] = measured(api, space, port, history, mode, seconds, 50, think)
                    print(f"      {name}: {found[name]}", flush=True)
            else:
                every_account(port, history)
                found["random_dashboards_cached"] = measured(
                    api, space, port, history, "random", seconds, 50, think_ms[0]
                )
                every_account(port, history)
                found["api_rss_after_every_account"] = _rss(api.pid)
        finally:
            api.stop()
    return found


def run_scale(
    single: Namespace,
    cluster: Namespace | None,
    history: History,
    port: int,
    seconds: int,
    think_ms: tuple[int, int],
    cluster_rebuild: tuple[Namespace, History] | None = None,
    api_workers: tuple[int, ...] = (1,),
) -> dict[str, Any]:
    """Every step of the phase; the result document.

    The query runs are made once per count in ``api_workers``, on the same history: under
    ``queries`` for the first count and under ``queries_<N>_api_workers`` for the others.
    """
    results: dict[str, Any] = {"history": history.__dict__, "api_workers": list(api_workers)}
    print(
        f"      producing {history.accounts * history.apps * history.days:,} day records ...",
        flush=True,
    )
    results["produced"] = asyncio.run(produce(single, history))
    print(f"      {results['produced']}", flush=True)
    for label, namespace in (("single", single), ("cluster", cluster)):
        if namespace is None:
            continue
        before = used_memory(namespace)
        part: dict[str, Any] = {}
        if label == "single":
            print(f"      {label}: rebuilding the view from the topic ...", flush=True)
            part["rebuild"] = rebuild(namespace, label)
        else:
            print(f"      {label}: copying the single node's view, key by key ...", flush=True)
            part["copied_from_single"] = copy_view(single, namespace)
        print(f"      {label}: {part}", flush=True)
        grown = used_memory(namespace) - before
        view_bytes, keys = key_bytes(namespace, namespace.env["CREDITFLOW_VIEW_PREFIX"] + ":*")
        days = results["produced"]["day_records"]
        buckets = results["produced"]["buckets"]
        part["memory"] = {
            "used_memory_growth": grown,
            "key_bytes": view_bytes,
            "keys": keys,
            "bytes_per_account_app_day": round(view_bytes / days),
            "bytes_per_nonempty_bucket": round(view_bytes / buckets, 1),
            "used_memory_per_account_app_day": round(grown / days),
        }
        part["dense"] = asyncio.run(dense_sample(namespace))
        print(f"      {label}: {part['memory']} {part['dense']}", flush=True)
        for index, workers in enumerate(api_workers):
            name = "queries" if not index else f"queries_{workers}_api_workers"
            print(f"      {label}: queries with {workers} API process(es) ...", flush=True)
            part[name] = queries(namespace, history, port, seconds, think_ms, workers)
            print(f"      {label}: {part[name]}", flush=True)
        results[label] = part
    if cluster_rebuild is not None:
        small = History(accounts=cluster_rebuild[1].accounts)
        print(f"      cluster: rebuild rate at {small.accounts} accounts ...", flush=True)
        produced = asyncio.run(produce(cluster_rebuild[0], small, seed=8))
        results["cluster_rebuild"] = {"history": small.__dict__, "produced": produced}
        results["cluster_rebuild"]["rebuild"] = rebuild(cluster_rebuild[0], "cluster-small")
        print(f"      cluster: {results['cluster_rebuild']}", flush=True)
    return results
