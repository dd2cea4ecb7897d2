"""Request bodies: read with a running size cap, and JSON parsed exactly (Decimal, no float).

uvicorn sets no limit on a request body, so every route that reads one goes through
:func:`read_body`: a declared ``Content-Length`` over the limit is refused before a byte is
read, and a chunked body is refused as soon as it passes the limit, so a client can never make
the API hold more than the limit in memory.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from fastapi import Request

from api.errors import ApiError

__all__ = ("parse_exact_json", "read_body", "read_json")


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"request body is over {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes; 413 beyond it, 400 for a bad Content-Length."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit() or len(declared) > 20:
            raise ApiError(400, "invalid_request", "Content-Length must be a byte count")
        if int(declared) > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_exact_json(body: bytes) -> Any:
    """JSON with every non-integer number as an exact Decimal; ValueError if unreadable."""
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_no_constants)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


async def read_json(request: Request, limit: int) -> Any:
    """The request body as exact JSON (see :func:`parse_exact_json`); 400 if it is not JSON."""
    body = await read_body(request, limit)
    try:
        return parse_exact_json(body)
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ApiError(
            400, "invalid_json", f"request body is not JSON: {str(error)[:200]}"
        ) from None
