"""Day values in the form written before they carried bucket counts (tests of reading them)."""

from __future__ import annotations


def without_counts(blob: bytes) -> bytes:
    """The value as written before the counts: no flag in the calls width, no 11 counts."""
    widths = blob.index(b":") + 1 + 12
    return blob[:widths] + bytes((blob[widths] & 0x7F, blob[widths + 1])) + blob[widths + 2 + 11 :]
