"""Bytes per remembered event id: in worker memory and in the state log.

.venv/bin/python -m bench.dedup_size [--ids 1000000]
"""

from __future__ import annotations

import argparse
import gc
import json
import tracemalloc
import uuid

from core.dedup import SeenIds
from core.partition import Limits, PartitionState
from core.statelog import snapshot_records


def measure(count: int, accounts: int = 50) -> dict[str, float]:
    """Memory (tracemalloc) and snapshot bytes of ``count`` UUID event ids over some accounts."""
    names = [f"account-{i:04d}" for i in range(accounts)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    seen = SeenIds()
    for n in range(count):
        # The id string and bucket start are created here, as the worker creates them per event,
        # so their bytes are counted.
        bucket = 1_795_000_000_000 + (n % 3360) * 900_000
        seen.add(names[n % accounts], str(uuid.UUID(int=n * 7919 + 12345)), bucket)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    state = PartitionState(0, Limits())
    state.seen = seen
    log_bytes = sum(len(key) + len(value) for key, value in snapshot_records(state))
    return {
        "ids": count,
        "memory_bytes_per_id": round((after - before) / count, 1),
        "state_log_bytes_per_id": round(log_bytes / count, 1),
        "event_id_length": 36,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ids", type=int, default=1_000_000)
    print(json.dumps(measure(parser.parse_args().ids)))


if __name__ == "__main__":
    main()
