"""Whether the view is complete: one marker per cluster slot, beside the accounts it vouches for.

A single "view complete" key would sit on one shard; a Redis Cluster shard that restarts empty
(no persistence, restarted before its replica took over) would lose a third of the accounts
while that key still says complete. So every slot has its own marker, in the slot itself: an
account's read checks the marker of its own slot in the same Lua call, and a shard that lost
its data lost its markers with it. A rebuild marks the missing slots ``pending:<epoch>`` when it
starts and completes them only if that mark survived, so a shard lost during the rebuild stays
incomplete and is rebuilt again.
"""

from __future__ import annotations

from view.connection import (
    REPLICA_WAIT_MS,
    Client,
    run_commands,
    run_pipeline,
    sample_slots,
    script,
)
from view.keys import SLOTS, ViewKeys

__all__ = ("PENDING", "ViewEpoch")

PENDING = b"pending:"


def _complete(value: bytes | None) -> bool:
    return value is not None and not value.startswith(PENDING)


class ViewEpoch:
    """The slot markers of one view."""

    def __init__(
        self, client: Client, keys: ViewKeys, replica_wait_ms: int = REPLICA_WAIT_MS
    ) -> None:
        self._redis = client
        self._keys = keys
        self._replica_wait_ms = replica_wait_ms
        self._marker = script(client, "marker")

    async def _values(self, slots: list[int]) -> list[bytes | None]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for slot in slots:
                pipe.get(self._keys.marker(slot))
            values: list[bytes | None] = await pipe.execute()
        return values

    async def complete(self) -> bool:
        """A cheap check: the marker of one random slot on every shard is complete."""
        return all(map(_complete, await self._values(await sample_slots(self._redis, SLOTS))))

    async def incomplete(self) -> int:
        """How many slots lack a complete marker (reads all 16,384)."""
        return sum(not _complete(value) for value in await self._values(list(range(SLOTS))))

    async def begin(self, epoch: str) -> None:
        """Mark every slot that is not complete as pending for the rebuild ``epoch``."""
        await self._each_slot("begin", epoch)

    async def finish(self, epoch: str) -> int:
        """Complete the slots still pending for ``epoch``; return the slots left incomplete."""
        return SLOTS - sum(await self._each_slot("finish", epoch))

    async def _each_slot(self, step: str, epoch: str) -> list[int]:
        args = [step, (PENDING + epoch.encode()).decode(), epoch]
        calls = [(self._marker, [self._keys.marker(slot)], args) for slot in range(SLOTS)]
        return await run_pipeline(self._redis, calls, self._replica_wait_ms)

    async def invalidate(self) -> None:
        """Mark the whole view incomplete (some changes were lost before reaching Redis)."""
        markers = [self._keys.marker(slot) for slot in range(SLOTS)]
        commands = [(marker, ("DEL", marker)) for marker in markers]
        await run_commands(self._redis, commands, self._replica_wait_ms)
