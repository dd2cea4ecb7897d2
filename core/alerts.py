"""Allotment alerts: which thresholds a period's usage has crossed, each fired exactly once.

A threshold fires once per ``(account, period, threshold)``: the fired set lives in the
partition state (and its state log), so replays, restarts and rebalances never fire it again,
and a late event that pushes a past period over a threshold fires for that period.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from core.billing import Period, Terms, crossed
from core.buckets import iso_utc
from core.money import format_micro

__all__ = ("Alert", "AlertKey", "alert_id", "newly_crossed")


class AlertKey(NamedTuple):
    """One threshold of one account's period: it fires at most once."""

    account_id: str
    period_start_ms: int
    threshold: int


def alert_id(account_id: str, period: Period, threshold: int) -> str:
    """Deterministic id: a crossing always gets the same one (the webhooks' idempotency key)."""
    return f"{account_id}:{period.start_date.isoformat()}:{threshold}"


@dataclass(frozen=True, slots=True)
class Alert:
    """A crossed threshold of one account's period."""

    alert_id: str
    account_id: str
    threshold: int
    period: Period
    allotment_micro: int
    used_micro: int
    crossed_at_ms: int
    event_id: str
    contract_version: int

    def to_wire(self) -> dict[str, Any]:
        """The JSON body published to ``usage.alerts.v1`` and POSTed to webhooks."""
        return {
            "alert_id": self.alert_id,
            "type": "allotment.threshold_crossed",
            "account_id": self.account_id,
            "threshold_percent": self.threshold,
            "period": {
                "start": self.period.start_date.isoformat(),
                "end": self.period.end_date.isoformat(),
                "start_at": iso_utc(self.period.start_ms),
                "end_at": iso_utc(self.period.end_ms),
            },
            "allotment": format_micro(self.allotment_micro),
            "used": format_micro(self.used_micro),
            "crossed_at": iso_utc(self.crossed_at_ms),
            "event_id": self.event_id,
            "contract_version": self.contract_version,
        }


def newly_crossed(
    terms: Terms,
    period: Period,
    used_micro: int,
    fired: dict[AlertKey, int],
    crossed_at_ms: int,
    event_id: str,
) -> list[Alert]:
    """Thresholds of ``terms`` that ``used_micro`` reaches and that have not fired yet.

    Marks them fired in ``fired`` (key -> period end, for expiry).
    """
    alerts = []
    for threshold in terms.thresholds:
        key = AlertKey(terms.account_id, period.start_ms, threshold)
        if key in fired or not crossed(used_micro, terms.allotment_micro, threshold):
            continue
        fired[key] = period.end_ms
        alerts.append(
            Alert(
                alert_id(terms.account_id, period, threshold),
                terms.account_id,
                threshold,
                period,
                terms.allotment_micro,
                used_micro,
                crossed_at_ms,
                event_id,
                terms.version,
            )
        )
    return alerts
