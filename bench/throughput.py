"""Sustained throughput of one worker process, beside its baselines, on the same preloaded data."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from bench.load import preload
from bench.namespace import RESULTS, Namespace, Process, creditflow, python_module, wait_for
from view import counters


@dataclass
class Run:
    """One subject consuming one preloaded topic."""

    subject: str
    events: int
    seconds: float
    peak_rss_bytes: int = 0
    failed: str | None = None
    """Why the subject has no figure (every attempt failed)."""
    attempts: int = 1
    load_average: float = 0.0
    """The 1-minute load average when the subject finished (the machine is shared)."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.rate),
            "peak_rss_bytes": self.peak_rss_bytes,
            "failed": self.failed,
            "attempts": self.attempts,
            "load_average": self.load_average,
        }


def attempt(
    subject: str, namespace: Namespace, measure: Callable[[Namespace], Run], tries: int = 2
) -> Run:
    """Measure a subject, retried on a fresh group and outputs if it fails; never raises.

    A failed subject becomes a row with its reason, so one broker hiccup costs one figure,
    not the whole run.
    """
    reason = ""
    for number in range(1, tries + 1):
        try:
            run = measure(namespace)
        except Exception as error:  # any failure is reported, none ends the benchmark
            reason = f"{type(error).__name__}: {error}"[:300]
            print(f"      {subject}: attempt {number} failed: {reason}", flush=True)
            namespace = namespace.retry()
            continue
        run.attempts = number
        run.load_average = round(os.getloadavg()[0], 2)
        return run
    return Run(subject, 0, 0.0, failed=reason, attempts=tries, load_average=os.getloadavg()[0])


def prepare(label: str, events: int, batch: int) -> Namespace:
    """A namespace whose input topic holds ``events`` events in records of ``batch``."""
    namespace = Namespace(label)
    namespace.flush_redis()
    asyncio.run(preload(namespace.settings(), events, batch))
    return namespace


def creditflow_worker(namespace: Namespace, events: int, timeout: float = 600) -> Run:
    """Start a worker on the preloaded topic; time from its first applied batch to the last."""
    namespace.flush_redis()  # a retry must not count the failed attempt's events
    client = redis.Redis.from_url(namespace.env["REDIS_URL"])
    worker = Process(creditflow("worker"), namespace, "worker")
    first: tuple[float, int] | None = None
    last = (0.0, 0)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if worker.proc.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {worker.proc.returncode} ({last[1]} of {events} events):"
                    f" {worker.last_line()}"
                )
            accepted = int(client.hget("cf:metrics", counters.EVENTS_ACCEPTED) or 0)
            now = time.monotonic()
            if accepted and first is None:
                first = (now, accepted)
            last = (now, accepted)
            if accepted >= events:
                break
            time.sleep(0.02)
        rss = worker.peak_rss_bytes()
    finally:
        worker.stop()
    if first is None or last[1] < events:
        raise RuntimeError(
            f"worker did not finish ({last[1]} of {events} events); see {worker.log}"
        )
    return Run("creditflow worker", last[1] - first[1], last[0] - first[0], rss)


def raw_aiokafka(namespace: Namespace, events: int) -> Run:
    """The Python consumption ceiling: aiokafka getmany plus JSON parsing, nothing else."""
    result = _subprocess_result(
        python_module(
            "bench.baselines.raw_aiokafka", namespace.settings().calls_topic, str(events)
        ),
        namespace,
        "raw",
        stdout=True,
    )
    return Run("raw aiokafka + parse", result["events"], result["seconds"])


def faust_noop(namespace: Namespace, records: int, events_per_record: int) -> Run:
    """Faust's per-record ceiling: a no-op agent over the same topic."""
    out = RESULTS / f"faust-{namespace.tag}.json"
    out.unlink(missing_ok=True)
    namespace.extra.update(
        {
            "BENCH_TOPIC": namespace.settings().calls_topic,
            "BENCH_GROUP": namespace.env["CREDITFLOW_GROUP_ID"] + ".faust-noop",
            "BENCH_RECORDS": str(records),
            "BENCH_RESULT": str(out),
        }
    )
    process = Process(
        python_module("bench.baselines.faust_noop", "worker", "-l", "warn"), namespace, "faust"
    )
    try:
        if not wait_for(out.exists, 600, 0.2):
            raise RuntimeError(f"faust baseline did not finish; see {process.log}")
    finally:
        process.stop()
    result = json.loads(out.read_text())
    return Run("faust no-op agent", result["records"] * events_per_record, result["seconds"])


def quix(namespace: Namespace, events: int) -> Run:
    """Quix Streams doing the same per-account, per-app 15-minute sums."""
    out = RESULTS / f"quix-{namespace.tag}.json"
    out.unlink(missing_ok=True)
    process = Process(
        python_module(
            "bench.baselines.quix_agg",
            namespace.settings().calls_topic,
            str(events),
            str(out),
            namespace.env["CREDITFLOW_GROUP_ID"] + ".quix",
        ),
        namespace,
        "quix",
    )
    try:
        if not wait_for(out.exists, 900, 0.2):
            raise RuntimeError(f"quix baseline did not finish; see {process.log}")
    finally:
        process.stop()
    result = json.loads(out.read_text())
    return Run("quix streams (same sums)", result["events"], result["seconds"])


def _subprocess_result(
    args: list[str], namespace: Namespace, name: str, stdout: bool
) -> dict[str, Any]:
    process = Process(args, namespace, name)
    try:
        process.proc.wait(600)
    finally:
        process.stop()
    lines = [line for line in process.log.read_text().splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{name} baseline produced no result; see {process.log}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result
