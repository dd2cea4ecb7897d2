"""A pure-ASGI fast path for ``GET /v1/accounts/{account}/usage``.

Dashboards poll usage; most of those requests are answered from the rendered-answer cache in
well under 0.1 ms, so the framework around them (routing, middleware layers, request objects)
was most of their cost. This middleware serves the successful answers itself through the same
:func:`api.answers.usage_body`; anything else (no or unknown token, bad query, 403, 503,
other routes) goes on to the FastAPI app, which answers exactly as before. The access check's
fast path (:class:`api.routes.access.AccessFastPath`) is the same middleware with another body.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from api.answers import usage_body
from api.auth import Principal, TokenStore, authorization_header
from api.errors import ApiError
from api.services import Services

__all__ = ("AccountFastPath", "UsageFastPath")

_PREFIX = "/v1/accounts/"


class AccountFastPath:
    """Serve 200 answers of ``GET /v1/accounts/{account}<suffix>`` directly; pass the rest on.

    A subclass names its ``suffix`` and renders the body; anything it declines (``None``), a
    path of another shape, a missing or unknown token, goes on to ``app`` unchanged.
    """

    suffix = ""

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
        if not (path.startswith(_PREFIX) and path.endswith(self.suffix)):
            return None
        account = path[len(_PREFIX) : -len(self.suffix)]
        if "/" in account:
            return None
        principal = self.tokens.principal_of(authorization_header(scope["headers"]))
        if principal is None:
            return None
        return await self.render(scope, account, principal)

    async def render(self, scope: Scope, account: str, principal: Principal) -> bytes | None:
        """The 200 body for ``account``, or ``None`` to let the full stack answer."""
        raise NotImplementedError


class UsageFastPath(AccountFastPath):
    """Serve 200 usage answers directly; pass everything else to ``app``."""

    suffix = "/usage"

    async def render(self, scope: Scope, account: str, principal: Principal) -> bytes | None:
        """The usage answer, or ``None`` for a bad query, 403 or 503."""
        params = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        try:
            return await usage_body(self.services, account, params, principal)
        except ApiError:
            return None
