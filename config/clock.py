"""The wall clock of the shells: the one place that reads it.

The core never reads a clock (its "now" is a record's broker append time, so replays reach
the same verdicts); code of the core that needs the current instant takes it as an argument,
and the API, the worker's bookkeeping and the CLI get it here.
"""

from __future__ import annotations

import time

__all__ = ("now_ms",)


def now_ms() -> int:
    """The current instant, in integer milliseconds since the epoch."""
    return time.time_ns() // 1_000_000
