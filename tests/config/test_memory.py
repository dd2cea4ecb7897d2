"""config.memory: freed heap pages go back to the OS."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from config.memory import release_free_heap


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux only")
def test_freed_blocks_below_the_top_of_the_heap_are_returned() -> None:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    # 64 MiB in blocks under glibc's mmap threshold (they live in the heap), then a block
    # kept at the top: freeing the rest leaves the heap unable to shrink from its top.
    blocks = [libc.malloc(64 * 1024) for _ in range(1024)]
    for block in blocks:
        ctypes.memset(block, 1, 64 * 1024)
    keep = libc.malloc(64 * 1024)
    for block in blocks:
        libc.free(block)
    before = _rss()
    assert release_free_heap()
    assert before - _rss() > 32 * 2**20
    libc.free(keep)
