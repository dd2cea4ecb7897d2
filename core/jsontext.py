"""What msgspec does not tell about a JSON text: repeated keys, and items too deep for it.

msgspec keeps the last of repeated keys, silently, and refuses any value nested deeper than the
interpreter's recursion limit (about 1,000 levels) with a RecursionError, even one it would only
skip. These helpers are exact but slower; callers use them only when a cheap test says so.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

__all__ = ("repeated_key", "split_array")

# A JSON string (escapes included), or one structural character. Everything between tokens
# (numbers, literals, whitespace) is left to the parser of each item.
_TOKEN: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]', re.DOTALL)
_OPEN: Final = frozenset(b"[{")
_CLOSE: Final = frozenset(b"]}")
_COMMA: Final = ord(",")
_QUOTE: Final = ord('"')


class _Repeated(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _Repeated(key)
        seen.add(key)


def repeated_key(raw: bytes) -> str | None:
    r"""The first key that an object of ``raw`` (at any depth) holds twice, if any.

    Keys compare as decoded, so ``"account_id"`` and ``"account\u005fid"`` are the same key,
    as they are to msgspec. Text that is not JSON has no repeated key here (its parser says
    what is wrong with it).
    """
    try:
        json.loads(
            raw,
            object_pairs_hook=_unique,
            parse_int=str,  # no conversions: only the keys matter, and int() has a digit limit
            parse_float=str,
            parse_constant=str,
        )
    except _Repeated as repeated:
        return repeated.key
    except (ValueError, RecursionError):
        return None
    return None


def split_array(value: bytes) -> list[bytes] | None:
    """The bytes of each item of a top-level JSON array, found without recursion.

    Only item boundaries are checked here (strings, brackets and top-level commas); each item
    still needs its own parse. None when ``value`` is not one array.
    """
    items: list[bytes] = []
    depth = 0
    start = end = -1
    for match in _TOKEN.finditer(value):
        char = value[match.start()]
        if char == _QUOTE:
            continue
        if char in _OPEN:
            if depth == 0:
                if char != ord("[") or value[: match.start()].strip():
                    return None
                start = match.end()
            depth += 1
        elif char in _CLOSE:
            depth -= 1
            if depth == 0:
                items.append(value[start : match.start()].strip())
                end = match.end()
                break
        elif char == _COMMA and depth == 1:
            items.append(value[start : match.start()].strip())
            start = match.end()
    if end < 0 or value[end:].strip():
        return None
    if items == [b""]:
        return []
    return None if b"" in items else items
