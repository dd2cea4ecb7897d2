"""``/healthz`` and ``/metrics`` (Prometheus text), both without authentication."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse
from redis.exceptions import RedisError

from api.responses import JSON
from api.services import Services, services
from config.clock import now_ms
from core.buckets import iso_utc
from core.freshness import Progress, freshness
from view import counters
from view.keys import as_text

__all__ = ("router",)

router = APIRouter()

logger = logging.getLogger(__name__)


async def _progress(svc: Services) -> dict[int, Progress]:
    lines = await svc.redis.hgetall(svc.reader.keys.progress)
    return {int(p): Progress.decode(as_text(line)) for p, line in lines.items()}


@router.get("/healthz", response_class=JSON, summary="Liveness and readiness")
async def healthz(svc: Annotated[Services, Depends(services)]) -> JSON:
    """200 when the API can answer (Redis up, view complete); 503 otherwise, with the reason.

    ``status`` is ``degraded`` while some input partition has no worker reporting progress:
    answers are served, but their ``as_of`` is unknown. Unauthenticated, so it says what is
    down and nothing more: the driver's error (addresses, hosts) goes to the log.
    """
    try:
        ready = await svc.reader.epoch.complete()
        progress = await _progress(svc)
    except RedisError as error:
        logger.warning("healthz: Redis is unreachable: %s", error)
        return JSON({"status": "unavailable", "redis": "unreachable"}, status_code=503)
    fresh = freshness(progress, svc.settings.partitions)
    body = {
        "status": "rebuilding" if not ready else "ok" if fresh.as_of_ms else "degraded",
        "view": "ready" if ready else "rebuilding",
        "partitions_reporting": len(progress),
        "partitions": svc.settings.partitions,
        "as_of": None if fresh.as_of_ms is None else iso_utc(fresh.as_of_ms),
        "lag": fresh.lag,
    }
    return JSON(body, status_code=200 if ready else 503)


def _metric(lines: list[str], name: str, kind: str, help_text: str) -> None:
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
async def metrics(svc: Annotated[Services, Depends(services)]) -> PlainTextResponse:
    """Lag, freshness, event and dead-letter counters, as the workers report them."""
    try:
        progress = await _progress(svc)
        found = {
            as_text(k): int(v)
            for k, v in (await svc.redis.hgetall(svc.reader.keys.metrics)).items()
        }
    except RedisError:
        return PlainTextResponse("# redis unavailable\n", status_code=503)
    lines: list[str] = []
    _metric(
        lines, "creditflow_consumer_lag", "gauge", "Input records not yet applied, per partition."
    )
    for partition, line in sorted(progress.items()):
        lines.append(f'creditflow_consumer_lag{{partition="{partition}"}} {line.lag}')
    fresh = freshness(progress, svc.settings.partitions)
    _metric(
        lines, "creditflow_freshness_seconds", "gauge", "Seconds since as_of of a usage answer."
    )
    if fresh.as_of_ms is not None:
        age = max(0, now_ms() - fresh.as_of_ms) / 1000
        lines.append(f"creditflow_freshness_seconds {age:.3f}")
    _metric(lines, "creditflow_events_total", "counter", "Events by outcome.")
    for outcome in counters.EVENT_OUTCOMES:
        value = found.get(counters.events(outcome), 0)
        lines.append(f'creditflow_events_total{{outcome="{outcome}"}} {value}')
    _metric(lines, "creditflow_dlq_total", "counter", "Dead-lettered events or records, by reason.")
    for name, value in sorted(found.items()):
        if name.startswith(counters.DLQ_PREFIX):
            reason = name.removeprefix(counters.DLQ_PREFIX)
            lines.append(f'creditflow_dlq_total{{reason="{reason}"}} {value}')
    _metric(lines, "creditflow_records_applied_total", "counter", "Input records applied.")
    lines.append(f"creditflow_records_applied_total {found.get(counters.RECORDS_APPLIED, 0)}")
    _metric(lines, "creditflow_alerts_fired_total", "counter", "Thresholds crossed (once each).")
    lines.append(f"creditflow_alerts_fired_total {found.get(counters.ALERTS_FIRED, 0)}")
    _metric(lines, "creditflow_alert_deliveries_total", "counter", "Webhook deliveries, by end.")
    for state in counters.DELIVERY_ENDS:
        value = found.get(counters.deliveries(state), 0)
        lines.append(f'creditflow_alert_deliveries_total{{state="{state}"}} {value}')
    _metric(lines, "creditflow_alert_delivery_attempts_total", "counter", "POSTs, by result.")
    for result in counters.ATTEMPT_RESULTS:
        value = found.get(counters.delivery_attempts(result), 0)
        lines.append(f'creditflow_alert_delivery_attempts_total{{result="{result}"}} {value}')
    _metric(lines, "creditflow_view_rebuilds_total", "counter", "Rebuilds of the Redis view.")
    lines.append(f"creditflow_view_rebuilds_total {found.get(counters.VIEW_REBUILDS, 0)}")
    _metric(
        lines,
        "creditflow_view_skipped_total",
        "counter",
        "Values left out of the view: unreadable bucket-topic records, days beyond its range.",
    )
    for name, counter in (
        ("unreadable", counters.VIEW_REBUILD_UNREADABLE),
        ("unwritable", counters.VIEW_UNWRITABLE_DAYS),
    ):
        lines.append(f'creditflow_view_skipped_total{{reason="{name}"}} {found.get(counter, 0)}')
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
