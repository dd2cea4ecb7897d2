"""``POST /v1/events``: HTTP ingest, validated like the stream, durable in Kafka before 202."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from api.auth import Authenticated
from api.bodies import read_body
from api.errors import ApiError
from api.publish import publish_events
from api.responses import JSON
from api.services import Services, services
from config.clock import now_ms
from core.events import Event, Reason, Rejection, decode_body
from core.partition import time_rejection
from models.events import CallEvent

__all__ = ("router",)

router = APIRouter()

logger = logging.getLogger(__name__)


class RejectedItem(BaseModel):
    """Why one item of the request was not accepted."""

    index: int
    reason: Reason
    detail: str


class IngestAnswer(BaseModel):
    """How many events were accepted (durably in Kafka) and which were not."""

    accepted: int
    rejected: list[RejectedItem]


@router.post(
    "/v1/events",
    status_code=202,
    response_class=JSON,
    responses={202: {"model": IngestAnswer}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            CallEvent.model_json_schema(),
                            {
                                "type": "array",
                                "items": CallEvent.model_json_schema(),
                                "maxItems": 1000,
                            },
                        ]
                    }
                }
            },
        }
    },
    summary="Send one call event or an array of up to 1,000",
)
async def post_events(
    request: Request, principal: Authenticated, svc: Annotated[Services, Depends(services)]
) -> JSON:
    """Accept valid events (each judged on its own); 202 once Kafka has them."""
    limit = svc.settings.max_request_bytes
    decoded = decode_body(await read_body(request, limit), limit)
    if isinstance(decoded, Rejection):
        raise ApiError(400, decoded.reason.value, decoded.detail)
    limits = svc.settings.limits
    now = now_ms()
    floor, ceiling = now - limits.late_horizon_ms, now + limits.future_tolerance_ms
    accepted: list[Event] = []
    rejected: list[dict[str, Any]] = []
    for index, item in enumerate(decoded):
        if isinstance(item, Event) and not principal.can_write(item.account_id):
            item = Rejection(
                Reason.FORBIDDEN_ACCOUNT,
                f"this token has no write scope on account {item.account_id!r}",
                index,
                item.raw,
            )
        elif isinstance(item, Event) and not floor <= item.occurred_ms <= ceiling:
            item = time_rejection(item, floor, ceiling, now)
        if isinstance(item, Rejection):
            rejected.append({"index": index, "reason": item.reason.value, "detail": item.detail})
        else:
            accepted.append(item)
    if accepted:
        await publish_events(svc, accepted)
    return JSON({"accepted": len(accepted), "rejected": rejected}, status_code=202)
