"""Wait until the given Kafka brokers all see each other (the cluster readiness of scripts/stack).

Usage: ``brokers.py SECONDS HOST:PORT [HOST:PORT ...]``. Exits 0 once the metadata each address
answers lists every given address as a broker, 1 (saying what each one lists) after SECONDS.
A broker's metadata holds only registered, unfenced brokers, so from then on topics replicated
to all of them, ``__consumer_offsets`` included, can be created.
"""

from __future__ import annotations

import asyncio
import sys
import time

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError


async def _brokers_seen_by(address: str) -> set[str]:
    client = AIOKafkaClient(bootstrap_servers=address, request_timeout_ms=3000)
    try:
        await client.bootstrap()
        return {f"{broker.host}:{broker.port}" for broker in client.cluster.brokers()}
    except KafkaError:
        return set()
    finally:
        await client.close()


async def _wait(seconds: float, addresses: list[str]) -> dict[str, set[str]]:
    deadline = time.monotonic() + seconds
    while True:
        seen = await asyncio.gather(*(_brokers_seen_by(address) for address in addresses))
        if all(set(addresses) <= ids for ids in seen) or time.monotonic() > deadline:
            return dict(zip(addresses, seen, strict=True))
        await asyncio.sleep(0.2)


def main() -> int:
    """Poll; exit 0 when every address lists them all, else say what each one lists."""
    seconds, addresses = float(sys.argv[1]), sys.argv[2:]
    seen = asyncio.run(_wait(seconds, addresses))
    if all(set(addresses) <= ids for ids in seen.values()):
        return 0
    for address, ids in seen.items():
        print(f"{address} lists brokers {sorted(ids)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
