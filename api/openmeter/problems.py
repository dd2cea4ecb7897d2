"""Errors of the OpenMeter surface as RFC 7807 ``application/problem+json``.

OpenMeter's clients read errors in that shape (the JavaScript SDK compares the content type
exactly, so it carries no ``charset``). Routes of this surface use :class:`ProblemRoute`, which
turns every error raised inside them, creditflow's own :class:`api.errors.ApiError` included
(401, 403, 503 ...), into a problem; :func:`unknown_route` answers the rest of ``/api``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.responses import Response

from api.errors import ApiError

__all__ = ("MEDIA_TYPE", "Problem", "ProblemRoute", "problem_response", "unknown_route")

MEDIA_TYPE = "application/problem+json"
# A problem names the path it answers; a path is the client's, so only its start is quoted.
_MAX_INSTANCE_CHARS = 256


class Problem(ApiError):
    """An :class:`ApiError` with extension members (for example per-event ``errors``)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(status, code, message, headers)
        self.extensions = extensions


def problem_response(
    request: Request,
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """A problem+json response; ``code`` is creditflow's stable error code."""
    body = {
        "type": f"https://creditflow.dev/problems/{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path[:_MAX_INSTANCE_CHARS],
        "code": code,
        # azure-core (under SDK 1.0.0b188) shows "code" and "message" in its exceptions.
        "message": detail,
        **extensions,
    }
    return Response(orjson.dumps(body), status, headers, media_type=MEDIA_TYPE)


def _from_error(request: Request, error: Exception) -> Response:
    if isinstance(error, Problem):
        return problem_response(
            request, error.status, error.code, error.message, error.headers, **error.extensions
        )
    if isinstance(error, ApiError):
        return problem_response(request, error.status, error.code, error.message, error.headers)
    if isinstance(error, RequestValidationError):
        detail = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'][1:])}: {item['msg']}"
            for item in error.errors()
        )
        return problem_response(request, 400, "invalid_request", detail or "invalid request")
    assert isinstance(error, HTTPException)
    return problem_response(request, error.status_code, "http_error", str(error.detail))


class ProblemRoute(APIRoute):
    """A route whose errors are answered as problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, wrapped."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except (ApiError, RequestValidationError, HTTPException) as error:
                return _from_error(request, error)

        return route


async def unknown_route(request: Request) -> Response:
    """404 for any other path under ``/api``."""
    return problem_response(
        request,
        404,
        "not_found",
        "creditflow implements OpenMeter's events, meters, entitlement values and portal "
        "tokens; see docs/openmeter.md",
    )
