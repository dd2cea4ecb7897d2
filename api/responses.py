"""JSON responses rendered with orjson (fast, exact: credits are already strings)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

__all__ = ("JSON",)


class JSON(Response):
    """``application/json`` rendered by orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialize ``content``."""
        return orjson.dumps(content)
