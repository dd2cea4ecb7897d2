"""Reads a partition's state back from its state log (the processor writes the log)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from config.settings import Settings
from core.statelog import StateFolder
from streams.replay import replay

__all__ = ("load_states",)

logger = logging.getLogger(__name__)


async def load_states(settings: Settings, partitions: Iterable[int]) -> dict[int, StateFolder]:
    """Fold the state log of each partition, read from the beginning to its current end."""
    wanted = sorted(set(partitions))
    folders = {partition: StateFolder.new(partition, settings.limits) for partition in wanted}
    if not wanted:
        return folders
    records = 0
    async for batch in replay(settings, settings.state_topic, wanted):
        for message in batch:
            folders[message.partition].feed(message.key or b"", message.value)
        records += len(batch)
    logger.info(
        "loaded state of partitions %s from %d state-log records (%s)",
        wanted,
        records,
        ", ".join(f"p{p}@{f.state.applied}" for p, f in folders.items()),
    )
    return folders
