"""A webhook receiver for tests: records every POST, can be switched down, verifies signatures.

The signature check is the receiver example of docs/billing.md: HMAC-SHA256 over
``"<t>.<body>"``, and ``t`` within a tolerance of the receiver's clock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    idempotency_key: str
    signature: str
    body: bytes
    answered: int

    @property
    def alert(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers 200 while up and 503 while down; a verified signature is required for 200."""

    secret: str
    up: bool = True
    redirect_to: str | None = None  # answer 307 to this URL instead of 200
    received: list[Received] = field(default_factory=list)
    redirected_hits: int = 0
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/creditflow"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hooks/creditflow", self._handle)
        app.router.add_post("/hooks/elsewhere", self._elsewhere)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def elsewhere_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/elsewhere"

    def verify(self, body: bytes, signature: str, tolerance: int = 300) -> bool:
        fields = dict(part.split("=", 1) for part in signature.split(",") if "=" in part)
        if not fields.get("t", "").isdigit() or "v1" not in fields:
            return False
        if abs(time.time() - int(fields["t"])) > tolerance:
            return False  # a replay of an old delivery
        signed = fields["t"].encode() + b"." + body
        expected = hmac.new(self.secret.encode(), signed, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, fields["v1"])

    async def _elsewhere(self, request: web.Request) -> web.Response:
        self.redirected_hits += 1
        return web.Response(status=200)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        signature = request.headers.get("X-Creditflow-Signature", "")
        if self.redirect_to is not None:
            self.received.append(
                Received(request.headers.get("Idempotency-Key", ""), signature, body, 307)
            )
            return web.Response(status=307, headers={"Location": self.redirect_to})
        status = 200 if self.up and self.verify(body, signature) else 503 if not self.up else 401
        self.received.append(
            Received(request.headers.get("Idempotency-Key", ""), signature, body, status)
        )
        return web.Response(status=status)

    def delivered(self) -> dict[str, int]:
        """Successful deliveries per idempotency key."""
        counts: dict[str, int] = {}
        for item in self.received:
            if item.answered == 200:
                counts[item.idempotency_key] = counts.get(item.idempotency_key, 0) + 1
        return counts
