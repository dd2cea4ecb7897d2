"""Per-period usage of each account and the alerts fired for it, inside a partition's state.

Period totals and fired thresholds are part of the state log, so they survive restarts and
rebalances exactly like buckets. A total is computed from the account's buckets the first time
a period is seen (normally: its first event) and then kept up to date event by event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from core.alerts import Alert, AlertKey, newly_crossed
from core.billing import Period, Terms, period_at

__all__ = ("PeriodKey", "PeriodLedger", "TermsLookup")

PeriodKey = tuple[str, int, int]
"""``(account_id, period start ms, period end ms)``."""

TermsLookup = Callable[[str], Terms | None]


@dataclass(slots=True)
class PeriodLedger:
    """Period totals (micro-credits) and fired thresholds of the accounts of one partition."""

    totals: dict[PeriodKey, int] = field(default_factory=dict)
    fired: dict[AlertKey, int] = field(default_factory=dict)
    changed: set[PeriodKey] = field(default_factory=set)
    new_fired: list[AlertKey] = field(default_factory=list)
    _by_account: dict[str, dict[int, int]] = field(default_factory=dict)
    _periods: dict[str, tuple[Terms, Period]] = field(default_factory=dict)

    def add_bucket_credits(self, account_id: str, bucket_ms: int, delta_micro: int) -> None:
        """Keep the per-account bucket index (all apps) in step with the buckets."""
        buckets = self._by_account.setdefault(account_id, {})
        buckets[bucket_ms] = buckets.get(bucket_ms, 0) + delta_micro

    def observe(
        self,
        terms: Terms,
        occurred_ms: int,
        micro: int,
        arrival_ms: int,
        event_id: str,
        sync: Callable[[], None] | None = None,
    ) -> list[Alert]:
        """Count an accepted event (already in its bucket) toward its period; new alerts.

        ``sync`` brings the bucket index up to date; it is called only when a period's total
        must be computed from the index (its first event since the period was last seen).
        """
        period = self._period(terms, occurred_ms)
        if period is None:
            return []
        key = (terms.account_id, period.start_ms, period.end_ms)
        used = self.totals.get(key)
        if used is None:
            if sync is not None:
                sync()
            buckets = self._by_account.get(terms.account_id, {})
            used = sum(
                m for start, m in buckets.items() if period.start_ms <= start < period.end_ms
            )
        else:
            used += micro
        self.totals[key] = used
        self.changed.add(key)
        alerts = newly_crossed(terms, period, used, self.fired, arrival_ms, event_id)
        self.new_fired += [(a.account_id, a.period.start_ms, a.threshold) for a in alerts]
        return alerts

    def _period(self, terms: Terms, occurred_ms: int) -> Period | None:
        cached = self._periods.get(terms.account_id)
        if cached is not None and cached[0] is terms and cached[1].contains(occurred_ms):
            return cached[1]
        period = period_at(terms, occurred_ms)
        if period is not None:
            self._periods[terms.account_id] = (terms, period)
        return period

    def take_changes(
        self,
    ) -> tuple[list[tuple[str, int, int, int]], list[tuple[str, int, int, int]]]:
        """Totals changed and thresholds fired since the last call, for the state delta."""
        totals = [
            (a, s, e, self.totals[(a, s, e)])
            for a, s, e in self.changed
            if (a, s, e) in self.totals
        ]
        fired = [
            (a, s, t, self.fired[(a, s, t)])
            for a, s, t in self.new_fired
            if (a, s, t) in self.fired
        ]
        self.changed = set()
        self.new_fired = []
        return totals, fired

    def restore(
        self,
        totals: Iterable[tuple[str, int, int, int]],
        fired: Iterable[tuple[str, int, int, int]],
    ) -> None:
        """Overwrite totals and add fired thresholds read back from the state log."""
        for account_id, start, end, micro in totals:
            self.totals[(account_id, start, end)] = micro
        for account_id, start, threshold, end in fired:
            self.fired[(account_id, start, threshold)] = end

    def evict(self, cutoff_ms: int) -> None:
        """Forget periods that ended before ``cutoff_ms`` and buckets that start before it."""
        for key in [key for key in self.totals if key[2] <= cutoff_ms]:
            del self.totals[key]
        for alert in [alert for alert, end in self.fired.items() if end <= cutoff_ms]:
            del self.fired[alert]
        for account_id in list(self._by_account):
            buckets = self._by_account[account_id]
            for start in [start for start in buckets if start < cutoff_ms]:
                del buckets[start]
            if not buckets:
                del self._by_account[account_id]
        self._periods.clear()
