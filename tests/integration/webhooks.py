"""A webhook receiver for tests: records every POST, can be switched down, verifies signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
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
    received: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/creditflow"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hooks/creditflow", self._handle)
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

    def verify(self, body: bytes, signature: str) -> bool:
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        signature = request.headers.get("X-Creditflow-Signature", "")
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
