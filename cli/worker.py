"""``creditflow worker``: create topics, then run the Faust worker until stopped."""

from __future__ import annotations

import asyncio
import gc
import logging
import os

import faust

from config.memory import fix_heap_thresholds
from config.settings import Settings
from config.topics import ensure_topics
from streams.app import create_app

__all__ = ("run_worker",)

logger = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    """Block running one worker process; returns its exit code."""
    fix_heap_thresholds()
    # Topics must exist with creditflow's settings (LogAppendTime, compaction) before Faust
    # subscribes, or Faust would create them with its defaults.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(ensure_topics(settings))
    finally:
        loop.close()
    asyncio.set_event_loop(asyncio.new_event_loop())
    app, runtime = create_app(settings)
    worker = faust.Worker(
        app,
        loglevel=os.environ.get("CREDITFLOW_LOG_LEVEL", "info"),
        redirect_stdouts=False,
        override_logging=False,
    )

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode's handler type rejects async
    async def _shutdown(sender: object, **kwargs: object) -> None:
        await runtime.stop()

    # A run allocates several objects per event, nearly all short-lived and free of cycles:
    # with the default thresholds the collector ran every few hundred events and took a
    # tenth of the time. Long-lived objects (the app, Faust, clients) are frozen out of it.
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    worker.execute_from_commandline()
    return 0
