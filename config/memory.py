"""Freed heap memory handed back to the OS, so a process's RSS follows its live data.

Process configuration shared by the worker and the API. In the worker, a run decodes its input
into many small objects and builds state-log records, day values and RocksDB write batches next
to them, then frees them all at once; the API's rendered answers (up to a few hundred KiB each)
churn the same way. glibc keeps freed memory in its arenas for reuse and returns it only from
the top of the heap, so without a trim a worker's RSS stayed at its highest point (~100 MiB
above its live data after a few large runs of a backfill). ``malloc_trim(0)`` returns every
free page; on a heap of a few hundred MiB it takes well under a millisecond.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

__all__ = ("fix_heap_thresholds", "release_free_heap")

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _libc_function(name: str) -> Callable[..., int] | None:
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    found: Callable[..., int] | None = getattr(ctypes.CDLL(library), name, None)
    return found  # glibc only (not musl, macOS)


_TRIM = _libc_function("malloc_trim")
_MALLOPT = _libc_function("mallopt")


def fix_heap_thresholds(mmap_bytes: int = 256 * 1024, trim_bytes: int = 4 * 2**20) -> bool:
    """Keep large blocks out of the heap and shrink it whenever its free top passes a bound.

    glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MiB),
    after which fetched record sets and write batches come from the heap, where freeing
    them leaves holes. Fixed thresholds keep such blocks mmapped: freed, they leave at once.
    """
    if _MALLOPT is None:
        return False
    return bool(_MALLOPT(_M_MMAP_THRESHOLD, mmap_bytes)) and bool(
        _MALLOPT(_M_TRIM_THRESHOLD, trim_bytes)
    )


def release_free_heap() -> bool:
    """Return the C heap's free pages to the OS; False where the C library cannot."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
