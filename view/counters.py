"""Names of the counters in the view's ``cf:metrics`` hash: the one list of them.

The worker's processor, deliverer and view keeper, and the view writer itself, add to these
counters; ``GET /metrics`` (:mod:`api.routes.health`) reads them back as Prometheus series.
Both sides name them here, so a renamed counter cannot leave a series silently at zero.
"""

from __future__ import annotations

from typing import Final

from core.events import Reason

__all__ = (
    "ALERTS_FIRED",
    "ATTEMPT_RESULTS",
    "DELIVERY_ENDS",
    "DLQ_PREFIX",
    "EVENTS_ACCEPTED",
    "EVENTS_DUPLICATE",
    "EVENTS_REROUTED",
    "EVENT_OUTCOMES",
    "RECORDS_APPLIED",
    "VIEW_REBUILDS",
    "VIEW_REBUILD_BUCKETS",
    "VIEW_REBUILD_MS",
    "VIEW_REBUILD_RECORDS",
    "VIEW_REBUILD_UNREADABLE",
    "VIEW_UNWRITABLE_DAYS",
    "deliveries",
    "delivery_attempts",
    "dlq",
    "events",
    "is_known",
)

EVENT_OUTCOMES: Final = ("accepted", "duplicate", "rerouted")
EVENTS_ACCEPTED: Final = "events_accepted"
EVENTS_DUPLICATE: Final = "events_duplicate"
EVENTS_REROUTED: Final = "events_rerouted"
RECORDS_APPLIED: Final = "records_applied"
ALERTS_FIRED: Final = "alerts_fired"
DLQ_PREFIX: Final = "dlq:"
DELIVERY_ENDS: Final = ("delivered", "expired")
ATTEMPT_RESULTS: Final = ("ok", "failed")
VIEW_REBUILDS: Final = "view_rebuilds"
VIEW_REBUILD_RECORDS: Final = "view_rebuild_records"
VIEW_REBUILD_BUCKETS: Final = "view_rebuild_buckets"
VIEW_REBUILD_UNREADABLE: Final = "view_rebuild_unreadable"
VIEW_REBUILD_MS: Final = "view_rebuild_ms"
VIEW_UNWRITABLE_DAYS: Final = "view_unwritable_days"

_FIXED = frozenset(
    {
        RECORDS_APPLIED,
        ALERTS_FIRED,
        VIEW_REBUILDS,
        VIEW_REBUILD_RECORDS,
        VIEW_REBUILD_BUCKETS,
        VIEW_REBUILD_UNREADABLE,
        VIEW_REBUILD_MS,
        VIEW_UNWRITABLE_DAYS,
    }
)


def events(outcome: str) -> str:
    """Events of one outcome (:data:`EVENT_OUTCOMES`)."""
    return f"events_{outcome}"


def dlq(reason: str) -> str:
    """Dead letters of one reason (a :class:`core.events.Reason` value)."""
    return DLQ_PREFIX + reason


_DLQ_NAMES = frozenset(dlq(reason.value) for reason in Reason)


def deliveries(state: str) -> str:
    """Webhook deliveries that ended in one state (:data:`DELIVERY_ENDS`)."""
    return f"deliveries:{state}"


def delivery_attempts(result: str) -> str:
    """Webhook POSTs of one result (:data:`ATTEMPT_RESULTS`)."""
    return f"delivery_attempts:{result}"


def is_known(name: str) -> bool:
    """Whether ``name`` is one of the counters above (``/metrics`` exports exactly these)."""
    return (
        name in _FIXED
        or name in _DLQ_NAMES
        or name in {events(outcome) for outcome in EVENT_OUTCOMES}
        or name in {deliveries(state) for state in DELIVERY_ENDS}
        or name in {delivery_attempts(result) for result in ATTEMPT_RESULTS}
    )
