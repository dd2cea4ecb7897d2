"""Baseline: Quix Streams computing the same per-account, per-app 15-minute sums.

Events are expanded from batch records (a single-event record is one event), stamped with their event time, and reduced per account
into a tumbling 15-minute window holding calls and micro-credits per app.

    python -m bench.baselines.quix_agg TOPIC EVENTS RESULT_FILE [GROUP]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from quixstreams import Application

TOPIC, EVENTS, RESULT = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
GROUP = sys.argv[4] if len(sys.argv) > 4 else TOPIC + ".quix"
state: dict[str, Any] = {"seen": 0, "first": 0.0}


def parse(value: bytes) -> list[dict[str, Any]]:
    body = json.loads(value)
    return body if isinstance(body, list) else [body]


def event_time(value: dict[str, Any], key: Any, timestamp: int, headers: Any) -> int:
    return int(datetime.fromisoformat(value["occurred_at"]).timestamp() * 1000)


def micro(text: str) -> int:
    whole, _, fraction = text.partition(".")
    return int(whole) * 1_000_000 + int(fraction.ljust(6, "0") or 0)


def add(totals: dict[str, list[int]], event: dict[str, Any]) -> dict[str, list[int]]:
    cell = totals.setdefault(event["app_id"], [0, 0])
    cell[0] += event.get("calls", 1)
    cell[1] += micro(event["credits"])
    state["seen"] += 1
    if not state["first"]:
        state["first"] = time.monotonic()
    if state["seen"] >= EVENTS:
        elapsed = time.monotonic() - state["first"]
        RESULT.write_text(
            json.dumps({"events": EVENTS, "seconds": elapsed, "rate": EVENTS / elapsed})
        )
        os._exit(0)
    return totals


def start(event: dict[str, Any]) -> dict[str, list[int]]:
    return add({}, event)


def main() -> None:
    app = Application(
        broker_address=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        consumer_group=GROUP,
        auto_offset_reset="earliest",
        state_dir=tempfile.mkdtemp(prefix="quix-state-"),
        use_changelog_topics=True,
    )
    topic = app.topic(TOPIC, key_deserializer="str", value_deserializer="bytes")
    frame = app.dataframe(topic)
    frame = frame.apply(parse, expand=True)
    frame = frame.set_timestamp(event_time)
    frame = frame.tumbling_window(timedelta(minutes=15), grace_ms=timedelta(days=35)).reduce(
        reducer=add, initializer=start
    )
    frame = frame.current()
    app.run()


if __name__ == "__main__":
    main()
