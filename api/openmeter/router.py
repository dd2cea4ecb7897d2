"""Every route of the OpenMeter surface, and a problem+json 404 for the rest of ``/api``."""

from __future__ import annotations

from fastapi import APIRouter

from api.openmeter import entitlements, ingest, portal, queries
from api.openmeter.problems import unknown_route

__all__ = ("router",)

router = APIRouter()
for module in (ingest, queries, entitlements, portal):
    router.include_router(module.router)
# Last, so it only catches what no route above matched.
router.add_api_route(
    "/api/{rest:path}",
    unknown_route,
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
