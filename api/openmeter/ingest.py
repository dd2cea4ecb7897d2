"""``POST /api/v1/events``: OpenMeter's CloudEvents ingest, into creditflow's own pipeline.

Each CloudEvent becomes a call event (:mod:`api.openmeter.cloudevents`), judged like one sent
to ``/v1/events``, and goes to the same Kafka topic, dedup, buckets and dead-letter queue.
A request is all or nothing: 204 once every event is durably in Kafka, or an error that names
each refused event and stores none (OpenMeter's clients can only tell a whole request's
outcome, so a partial success would leave them unable to tell what counted). Resending a
request is always safe: OpenMeter's ``(subject, source, id)`` is creditflow's dedup key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from api.auth import Authenticated
from api.bodies import read_body
from api.openmeter.cloudevents import IngestError, ItemError, map_body
from api.openmeter.problems import Problem, ProblemRoute
from api.publish import publish_events
from api.services import Services, services
from config.clock import now_ms
from core.events import Event, Reason
from core.excerpt import excerpt
from core.partition import time_rejection

__all__ = ("router",)

router = APIRouter(route_class=ProblemRoute, tags=["OpenMeter"])

_LISTED_ERRORS = 20  # a problem lists at most this many refused events


@router.post(
    "/api/v1/events",
    status_code=204,
    summary="Ingest CloudEvents (one, or a batch of up to 1,000): OpenMeter-compatible",
)
async def ingest_events(
    request: Request, principal: Authenticated, svc: Annotated[Services, Depends(services)]
) -> Response:
    """204 when every event is stored; 400 (nothing stored) when any event is refused."""
    body = await read_body(request, svc.settings.max_request_bytes)
    now = now_ms()
    try:
        mapped = map_body(body, request.headers.get("content-type"), now)
    except IngestError as error:
        raise Problem(415 if error.unsupported else 400, "invalid_request", str(error)) from None
    limits = svc.settings.limits
    floor, ceiling = now - limits.late_horizon_ms, now + limits.future_tolerance_ms
    events: list[Event] = []
    errors: list[ItemError] = []
    forbidden = False
    for item in mapped:
        if isinstance(item, Event) and not principal.can_write(item.account_id):
            forbidden = True
            item = ItemError(
                item.index or 0,
                Reason.FORBIDDEN_ACCOUNT.value,
                f"this token has no write scope on subject {excerpt(item.account_id)}",
            )
        elif isinstance(item, Event) and not floor <= item.occurred_ms <= ceiling:
            rejection = time_rejection(item, floor, ceiling, now)
            detail = rejection.detail.replace("occurred_at", "time", 1)
            item = ItemError(item.index or 0, rejection.reason.value, detail)
        if isinstance(item, ItemError):
            errors.append(item)
        else:
            events.append(item)
    if errors:
        listed = [
            {"index": e.index, "reason": e.reason, "detail": e.detail}
            for e in errors[:_LISTED_ERRORS]
        ]
        raise Problem(
            403 if forbidden else 400,
            errors[0].reason,
            f"{len(errors)} of {len(mapped)} events refused, none stored; first: "
            f"event {errors[0].index}: {errors[0].detail}",
            errors=listed,
        )
    await publish_events(svc, events)
    return Response(status_code=204)
