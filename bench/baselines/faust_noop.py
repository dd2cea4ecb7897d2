"""Baseline: a faust-streaming agent that does nothing per record (Faust's per-record ceiling).

python -m bench.baselines.faust_noop worker   (env: BENCH_TOPIC, BENCH_RECORDS, BENCH_RESULT, BENCH_GROUP)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import faust

TOPIC = os.environ["BENCH_TOPIC"]
RECORDS = int(os.environ["BENCH_RECORDS"])
RESULT = Path(os.environ["BENCH_RESULT"])

app = faust.App(
    os.environ.get("BENCH_GROUP", TOPIC + ".faust-noop"),
    broker="kafka://" + os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
    store="memory://",
    web_enabled=False,
    topic_disable_leader=True,
    consumer_auto_offset_reset="earliest",
)
topic = app.topic(TOPIC, key_serializer="raw", value_serializer="raw")
state: dict[str, Any] = {"seen": 0, "first": 0.0}


@app.agent(topic)
async def noop(stream: Any) -> None:
    async for _ in stream:
        if not state["first"]:
            state["first"] = time.monotonic()
        state["seen"] += 1
        if state["seen"] >= RECORDS:
            elapsed = time.monotonic() - state["first"]
            RESULT.write_text(
                json.dumps({"records": RECORDS, "seconds": elapsed, "rate": RECORDS / elapsed})
            )
            os._exit(0)


if __name__ == "__main__":
    app.main()
