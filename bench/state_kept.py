"""A worker state built once and kept, to measure the apply rate at size again and again.

    python -m bench.state_kept build --dir D --ids N
    python -m bench.state_kept run --dir D --kind backfill|current --events M
        [--profile SECONDS] [--env NAME=VALUE ...]

``build`` produces ``N`` unique events spread over 30 days (as ``creditflow bench --scale
--scale-phase state`` does), lets one worker apply them and stops it; the topics, the Redis
database and the local stores stay (``D/namespace.json`` names them). Each ``run`` then
produces ``M`` more events while no worker runs, starts a worker on the kept stores (with the
extra settings given) and reports, once it has applied them: its apply rate, its CPU split
per thread (the Python main thread, RocksDB's background threads, the rest) and its RSS. The
state grows by ``M`` ids per run. With ``--profile`` it records the main thread with
``py-spy --native`` for that many seconds of the apply.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.namespace import RESULTS, ROOT, Namespace, cpu_seconds
from bench.state_scale import ScaleSizes, _rss, _Worker, produce


def _threads(pid: int) -> dict[int, tuple[str, float]]:
    """Thread id -> (name, CPU seconds so far)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            out[int(task.name)] = (name, cpu_seconds(task / "stat"))
        except OSError:
            continue  # a thread that ended meanwhile
    return out


def _split(pid: int, before: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds per kind of thread since ``before``."""
    split: dict[str, float] = {}
    for tid, (name, cpu) in _threads(pid).items():
        spent = cpu - before.get(tid, (name, 0.0))[1]
        if tid == pid:
            kind = "main"
        elif name.startswith("rocksdb"):
            kind = "rocksdb background"
        else:
            kind = "other threads"
        split[kind] = split.get(kind, 0.0) + spent
    return {kind: round(seconds, 2) for kind, seconds in split.items()}


def _namespace(directory: Path) -> Namespace:
    saved = json.loads((directory / "namespace.json").read_text())
    namespace = Namespace(saved["label"], tag=saved["tag"])
    namespace.extra.update({"CREDITFLOW_DATA_DIR": str(directory / "data")})
    return namespace


def build(directory: Path, ids: int) -> dict[str, Any]:
    """Produce ``ids`` backfill events and apply them with one worker; keep everything."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    namespace = Namespace("kept")
    (directory / "namespace.json").write_text(
        json.dumps({"label": namespace.label, "tag": namespace.tag})
    )
    namespace = _namespace(directory)
    namespace.flush_redis()
    produced = asyncio.run(produce(namespace, ids, ScaleSizes(), 30 * 86_400, 1))
    return {"produce_seconds": round(produced, 1), **_apply(namespace, ids, 0, [], "build")}


def _apply(
    namespace: Namespace, events: int, profile_s: int, env: list[str], name: str
) -> dict[str, Any]:
    namespace.extra.update(dict(item.split("=", 1) for item in env))
    worker = _Worker(namespace, name)
    base = worker.accepted()
    samples: list[tuple[float, int, int]] = []
    try:
        worker.wait_started(base, 600)
        pid = worker.process.pid
        cpu_before, started, first = _threads(pid), time.monotonic(), worker.accepted()
        spy = None
        if profile_s:
            raw = RESULTS / f"kept-{name}-{namespace.tag}.txt"
            command = [str(ROOT / ".venv" / "bin" / "py-spy"), "record", "--native", "-r", "100"]
            command += ["--format", "raw", "-d", str(profile_s), "-p", str(pid), "-o", str(raw)]
            spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        worker.apply_until(base + events, 3600, samples)
        split = _split(pid, cpu_before)
        elapsed = time.monotonic() - started
        ids_after = worker.accepted()
        applied = ids_after - first  # one count for every figure below
        if spy is not None:
            spy.wait()
        return {
            "events": applied,
            "seconds": round(elapsed, 1),
            "events_per_second": round(applied / elapsed),
            "cpu_seconds": split,
            "cpu_us_per_event": {k: round(1e6 * v / applied, 2) for k, v in split.items()},
            "rss_max_sampled_mib": round(max(s[2] for s in samples) / 2**20),
            "rss_end_mib": round(_rss(pid) / 2**20),
            "peak_rss_mib": round(worker.process.peak_rss_bytes() / 2**20),
            "ids_after": ids_after,
        }
    finally:
        worker.process.stop()


def run(directory: Path, kind: str, events: int, profile_s: int, env: list[str]) -> dict[str, Any]:
    """Produce ``events`` more, then apply them with a worker on the kept stores."""
    namespace = _namespace(directory)
    spread = 30 * 86_400 if kind == "backfill" else 120
    seed = int(time.time())
    produced = asyncio.run(produce(namespace, events, ScaleSizes(), spread, seed))
    result = _apply(namespace, events, profile_s, env, f"{kind}-{seed}")
    du = subprocess.run(["du", "-sb", str(directory / "data")], capture_output=True, text=True)
    return {
        "kind": kind,
        "env": env,
        "produce_seconds": round(produced, 1),
        **result,
        "disk_bytes": int(du.stdout.split()[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.state_kept", description=__doc__)
    parser.add_argument("command", choices=["build", "run"])
    parser.add_argument("--dir", type=Path, default=RESULTS / "kept-state")
    parser.add_argument("--ids", type=int, default=8_000_000)
    parser.add_argument("--kind", choices=["backfill", "current"], default="backfill")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--profile", type=int, default=0)
    parser.add_argument("--env", action="append", default=[])
    args = parser.parse_args()
    if args.command == "build":
        result = build(args.dir, args.ids)
    else:
        result = run(args.dir, args.kind, args.events, args.profile, args.env)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
