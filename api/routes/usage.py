"""``GET /v1/accounts/{account}/usage``: totals, per-app breakdown and local-calendar series."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.answers import usage_body
from api.auth import authenticate
from api.responses import JSON
from models.usage import UsageAnswer

__all__ = ("router",)

router = APIRouter()


def _query_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": description,
    }


_USAGE_PARAMETERS = [
    {"name": "account", "in": "path", "required": True, "schema": {"type": "string"}},
    _query_parameter("from", "RFC 3339 instant or YYYY-MM-DD (local midnight in tz); inclusive"),
    _query_parameter("to", "RFC 3339 instant or YYYY-MM-DD (local midnight in tz); exclusive"),
    _query_parameter("tz", "IANA zone; default: the contract's, else UTC"),
    _query_parameter("window", "none | hour | day | month (local, DST-aware)"),
    _query_parameter("group_by", "app | none"),
]


@router.get(
    "/v1/accounts/{account}/usage",
    response_class=JSON,
    responses={200: {"model": UsageAnswer}},
    summary="Usage of an account over a range, per app, with a local-calendar series",
    openapi_extra={"parameters": _USAGE_PARAMETERS, "security": [{"bearer": []}]},
)
async def get_usage(request: Request) -> Response:
    """Exact usage over ``[from, to)``; every answer says how fresh it is.

    The hottest route: it reads its query string and token itself, because FastAPI's
    per-request parameter resolution cost twice the answer (served from cache) itself. Most
    requests do not even get here: :class:`api.fastpath.UsageFastPath` answers them first.
    """
    principal = await authenticate(request)
    body = await usage_body(
        request.app.state.services, request.path_params["account"], request.query_params, principal
    )
    return Response(body, media_type="application/json")
