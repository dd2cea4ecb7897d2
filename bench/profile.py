"""Where a worker's time goes per event: py-spy samples of a worker on a preloaded topic.

    python -m bench.profile single|batch|backfill [--events N] [--seconds S]

Preloads the topic (single-event records, records of 500, or records of 500 whose events
spread over the last 30 days as in ``creditflow bench --scale``'s backfill), starts ``creditflow worker``,
records it with ``py-spy record --format raw`` for a fixed duration once it applies events,
and prints microseconds per event by component and the busiest functions. Samples of idle
threads are left out, so the figures are CPU time (the worker's two threads: the event loop
and Faust's consumer thread).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import shutil
import subprocess
import time
from pathlib import Path

import redis

from bench import state_scale, throughput
from bench.namespace import RESULTS, ROOT, Namespace, Process, creditflow
from bench.state_scale import ScaleSizes
from view import counters

RATE_HZ = 250
# (component, substrings of a frame): the innermost matching frame names the component.
COMPONENTS = [
    ("decode (core/events.py)", ["core/events.py", "core/money.py"]),
    ("RocksDB reads and writes (streams/state/store.py)", ["streams/state/store.py"]),
    (
        "core: route, dedup, count (core/partition.py, statecodec, ledger)",
        ["core/partition.py", "core/statecodec.py", "core/ledger.py", "core/days.py"],
    ),
    ("state log and outbox records (streams/state, records)", ["streams/state/", "records.py"]),
    ("Redis view writes (redis-py, view/)", ["redis/", "view/"]),
    ("Kafka produce (aiokafka producer)", ["aiokafka/producer", "Processor._send"]),
    (
        "Kafka fetch and record parsing (aiokafka consumer)",
        ["aiokafka/consumer", "aiokafka/record", "aiokafka/protocol", "_fetch_records"],
    ),
    (
        "Faust: conductor, channel, stream, agent, acks, mode services",
        [
            "faust/transport/conductor",
            "faust/streams",
            "faust/channels",
            "faust/topics",
            "faust/agents",
            "faust/events",
            "Consumer._drain_messages",
            "Consumer.getmany",
            "Consumer._to_message",
            "Consumer.ack",
            "faust/sensors",
            "mode/services.py",
            "faust/serializers",
            "_weakrefset",
        ],
    ),
    ("fetch hand-off (streams/consumer.py)", ["streams/consumer.py"]),
    ("processor bookkeeping (streams/processor.py)", ["streams/processor.py"]),
    ("aiokafka client and connections", ["aiokafka/"]),
    ("event loop, sockets, threads (asyncio, mode)", ["asyncio/", "selectors.py", "mode/"]),
]


def component(frames: list[str]) -> str:
    """The component a sample's stack (outermost first) is charged to.

    asyncio work done on behalf of a caller is charged to the innermost caller that belongs to
    a component other than the event loop itself.
    """
    found = None
    for frame in reversed(frames):
        found = next((name for name, keys in COMPONENTS if any(k in frame for k in keys)), None)
        if found:
            break
    if found is None or found.startswith(("event loop", "aiokafka client")):
        for frame in reversed(frames):
            owner = next(
                (name for name, keys in COMPONENTS[:-2] if any(k in frame for k in keys)), None
            )
            if owner:
                return owner
    return found or "other"


def report(raw: Path, events: int, top: int = 12) -> str:
    """Markdown tables: microseconds per event by component, then by function (self time)."""
    by_component: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames, samples = stack.split(";"), int(count)
        total += samples
        by_component[component(frames)] += samples
        name = re.sub(r"\(/[^)]*?(site-packages|python3\.\d+|throughput)/", "(", frames[-1])
        by_function[re.sub(r":\d+\)", ")", name)] += samples

    def us(samples: int) -> str:
        return f"{1e6 * samples / RATE_HZ / events:.2f}"

    lines = ["| where | µs per event | share |", "|---|---:|---:|"]
    lines += [
        f"| {name} | {us(n)} | {100 * n / total:.0f}% |" for name, n in by_component.most_common()
    ]
    lines += [f"| **CPU sampled** | **{us(total)}** | |", "", "| function (self) | µs per event |"]
    lines += ["|---|---:|"] + [f"| `{f}` | {us(n)} |" for f, n in by_function.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("kind", choices=["single", "batch", "backfill"])
    parser.add_argument("--events", type=int, default=0, help="preloaded events")
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    batch = 1 if args.kind == "single" else 500
    events = args.events or (1_000_000 if batch == 1 else 2_500_000)
    spy = shutil.which("py-spy") or str(ROOT / ".venv" / "bin" / "py-spy")
    if args.kind == "backfill":
        namespace = Namespace(f"profile-{args.kind}")
        namespace.flush_redis()
        asyncio.run(state_scale.produce(namespace, events, ScaleSizes(), 30 * 86_400, 1))
    else:
        namespace = throughput.prepare(f"profile-{args.kind}", events, batch)
    client = redis.Redis.from_url(namespace.env["REDIS_URL"])
    worker = Process(creditflow("worker"), namespace, "worker")
    raw = RESULTS / f"profile-{args.kind}-{namespace.tag}.txt"
    try:
        while int(client.hget("cf:metrics", counters.EVENTS_ACCEPTED) or 0) == 0:
            if worker.proc.poll() is not None:
                raise SystemExit(f"the worker exited: {worker.last_line()}")
            time.sleep(0.02)
        before = int(client.hget("cf:metrics", counters.EVENTS_ACCEPTED) or 0)
        started = time.monotonic()
        record = ["record", "--format", "raw", "-r", str(RATE_HZ), "-d", str(args.seconds)]
        subprocess.run(
            [spy, *record, "--nonblocking", "-p", str(worker.pid), "-o", str(raw)],
            check=True,
            capture_output=True,
        )
        elapsed = time.monotonic() - started
        profiled = int(client.hget("cf:metrics", counters.EVENTS_ACCEPTED) or 0) - before
    finally:
        worker.stop()
    if profiled >= events - before:
        print("warning: the worker ran out of input during the profile; use more --events")
    print(f"{profiled:,} events in {elapsed:.1f} s ({profiled / elapsed:,.0f}/s); raw: {raw}\n")
    print(report(raw, profiled))


if __name__ == "__main__":
    main()
