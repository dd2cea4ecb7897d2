"""Quoting tenant input in messages: a bounded excerpt, never the whole of it.

Rejection details travel in dead letters and API answers; an input of a megabyte must not make
a message of a megabyte (or of six, once escaped).
"""

from __future__ import annotations

from typing import Final

__all__ = ("EXCERPT_CHARS", "MESSAGE_CHARS", "clip", "excerpt")

EXCERPT_CHARS: Final = 40
"""Characters of an input value quoted in a message."""

MESSAGE_CHARS: Final = 300
"""Characters of a message that may carry input (a parser's own error text)."""


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``repr`` of at most ``limit`` characters of ``text``, saying how long the whole was."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def clip(message: str, limit: int = MESSAGE_CHARS) -> str:
    """``message`` cut to ``limit`` characters, marked when cut."""
    if len(message) <= limit:
        return message
    return message[:limit] + "..."
