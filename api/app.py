"""The FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

from api.errors import ApiError, install_error_handlers
from api.fastpath import UsageFastPath
from api.openmeter.router import router as openmeter_router
from api.routes import access, admin, billing, dashboard, events, health, stream, usage
from api.services import Services
from config.memory import fix_heap_thresholds, release_free_heap
from config.settings import Settings, get_settings

__all__ = ("create_app",)


class _App(FastAPI):
    """FastAPI with the access check's fast path outside the framework's own middleware.

    The access check is meant to be called on every request of a gateway; FastAPI's error,
    telemetry and body-limit layers cost it more than the answer itself. The fast path only
    ever answers 200s and hands everything else (errors included) to the full stack.
    """

    services: Services

    def build_middleware_stack(self) -> ASGIApp:
        """The usual stack, wrapped by :class:`api.routes.access.AccessFastPath`."""
        return access.AccessFastPath(
            super().build_middleware_stack(), self.services, self.services.tokens
        )


async def _release_free_heap_every(seconds: float) -> None:
    """Freed answers' memory back to the OS (config/memory.py), so RSS follows the caches."""
    while True:
        await asyncio.sleep(seconds)
        release_free_heap()


def create_app(settings: Settings | None = None) -> FastAPI:
    """A configured API app (``uvicorn --factory api.app:create_app``)."""
    settings = settings or get_settings()
    svc = Services.create(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Long-lived objects (app, caches) out of the collector's way, and fewer young-generation
        # passes: full collections were the main source of tail latency under load.
        with contextlib.suppress(ApiError, TimeoutError):
            # Contracts up front, so the first requests do not wait for the config topic; if
            # Kafka is not there yet, they are loaded on first use instead.
            await asyncio.wait_for(svc.accounts(), timeout=15)
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        fix_heap_thresholds()
        trimmer = asyncio.ensure_future(_release_free_heap_every(1.0))
        yield
        trimmer.cancel()
        await svc.close()

    app = _App(
        title="creditflow",
        version="0.1.0",
        description="Real-time usage and credit metering: exact per-app and per-account totals.",
        lifespan=lifespan,
    )
    app.services = svc
    app.state.services = svc
    app.state.tokens = svc.tokens
    install_error_handlers(app)
    app.include_router(usage.router)
    app.include_router(stream.router)
    app.include_router(events.router)
    app.include_router(billing.router)
    app.include_router(admin.router)
    app.include_router(health.router)
    app.include_router(dashboard.router)
    app.include_router(access.router)
    app.include_router(openmeter_router)
    app.add_middleware(UsageFastPath, services=svc, tokens=svc.tokens)
    return app
