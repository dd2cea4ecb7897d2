"""A pure-ASGI fast path for ``GET /v1/accounts/{account}/usage``.

Dashboards poll usage; most of those requests are answered from the rendered-answer cache in
well under 0.1 ms, so the framework around them (routing, middleware layers, request objects)
was most of their cost. This middleware serves the successful answers itself through the same
:func:`api.answers.usage_body`; anything else (no or unknown token, bad query, 403, 503,
other routes) goes on to the FastAPI app, which answers exactly as before.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from api.answers import usage_body
from api.auth import TokenStore, authorization_header
from api.errors import ApiError
from api.services import Services

__all__ = ("UsageFastPath",)

_PREFIX = "/v1/accounts/"
_SUFFIX = "/usage"


class UsageFastPath:
    """Serve 200 usage answers directly; pass everything else to ``app``."""

    def __init__(self, app: ASGIApp, services: Services, tokens: TokenStore) -> None:
        self.app = app
        self.services = services
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "http" and scope["method"] == "GET":
            body = await self._answer(scope)
            if body is not None:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope) -> bytes | None:
        path: str = scope["path"]
        if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
            return None
        account = path[len(_PREFIX) : -len(_SUFFIX)]
        if "/" in account:
            return None
        principal = self.tokens.principal_of(authorization_header(scope["headers"]))
        if principal is None:
            return None
        params = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        try:
            return await usage_body(self.services, account, params, principal)
        except ApiError:
            return None
