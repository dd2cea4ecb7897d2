"""Per-period usage of each account and the alerts fired for it, inside a partition's state.

Period totals and fired thresholds are part of the partition state (and its state log), so they
survive restarts and rebalances exactly like days. A total is opened the first time a period is
seen (normally its first event) from the account's usage the state still holds, then kept up
to date event by event.

The state holds only the late horizon, while a period can be longer (a one-year contract). A
total opened for a period that starts before the state's first day is therefore *unseeded*:
its history before that day is missing, and its alerts wait until the shell has read that
history from the serving view and :meth:`PeriodLedger.seed` has added it. Billing never fires
50% of a year after reading only its last month.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from core.alerts import Alert, AlertKey, newly_crossed
from core.billing import Period, Terms, period_at

__all__ = ("PeriodKey", "PeriodLedger", "PeriodTotal", "TermsLookup")

TermsLookup = Callable[[str], Terms | None]


class PeriodKey(NamedTuple):
    """An account's billing period, by its instants."""

    account_id: str
    start_ms: int
    end_ms: int


class PeriodTotal(NamedTuple):
    """Micro-credits used in a period, the input offset of its last change, and its seed state.

    ``unseeded_before_ms`` is the period start once the total is complete; while it is later
    than the start, usage in ``[start, unseeded_before_ms)`` is still to be added by a seed and
    ``opened_by`` names the event that opened it (the cause of alerts the seed may fire).
    """

    micro: int
    version: int
    unseeded_before_ms: int
    opened_by: str = ""


@dataclass(slots=True)
class PeriodLedger:
    """Period totals (micro-credits) and fired thresholds of the accounts of one partition."""

    totals: dict[PeriodKey, PeriodTotal] = field(default_factory=dict)
    fired: dict[AlertKey, int] = field(default_factory=dict)
    """Fired thresholds -> their period's end (for expiry)."""
    _changed: set[PeriodKey] = field(default_factory=set)
    _new_fired: list[AlertKey] = field(default_factory=list)
    _periods: dict[str, tuple[Terms, Period]] = field(default_factory=dict)

    def period(self, terms: Terms, occurred_ms: int) -> Period | None:
        """The account's period holding ``occurred_ms`` (cached: events come in runs)."""
        cached = self._periods.get(terms.account_id)
        if cached is not None and cached[0] is terms and cached[1].contains(occurred_ms):
            return cached[1]
        period = period_at(terms, occurred_ms)
        if period is not None:
            self._periods[terms.account_id] = (terms, period)
        return period

    def open(
        self, terms: Terms, period: Period, key: PeriodKey, total: PeriodTotal, arrival_ms: int
    ) -> list[Alert]:
        """Start counting a period from what the state holds of it (the opening event included).

        Returns the thresholds that total already crosses, unless history is still missing.
        """
        self.totals[key] = total
        self._changed.add(key)
        if total.unseeded_before_ms > key.start_ms:
            return []
        return self._crossed(terms, period, total.micro, arrival_ms, total.opened_by)

    def add(
        self,
        terms: Terms,
        period: Period,
        key: PeriodKey,
        micro: int,
        offset: int,
        arrival_ms: int,
        event_id: str,
    ) -> list[Alert]:
        """Count an accepted event of an open period; return the thresholds it crosses.

        A stored total whose version is already at or past ``offset`` has counted this event
        (a state log written ahead of the input commit, then replayed): it is left alone. A
        total changed since the last :meth:`take_changes` is this run's own and always counts.
        """
        total = self.totals[key]
        if total.version >= offset and key not in self._changed:
            return []
        total = total._replace(micro=total.micro + micro, version=offset)
        self.totals[key] = total
        self._changed.add(key)
        if total.unseeded_before_ms > key.start_ms:
            return []
        return self._crossed(terms, period, total.micro, arrival_ms, event_id)

    def unseeded(self) -> list[tuple[PeriodKey, int]]:
        """Open periods still missing history: ``(key, missing up to this instant)``."""
        return [
            (key, total.unseeded_before_ms)
            for key, total in self.totals.items()
            if total.unseeded_before_ms > key.start_ms
        ]

    def seed(
        self, terms: Terms | None, key: PeriodKey, history_micro: int, arrival_ms: int
    ) -> list[Alert]:
        """Add the usage before the state's first day; return the thresholds now crossed."""
        total = self.totals.get(key)
        if total is None or total.unseeded_before_ms <= key.start_ms:
            return []
        opener = self._opener(key, total)
        total = PeriodTotal(total.micro + history_micro, total.version, key.start_ms)
        self.totals[key] = total
        self._changed.add(key)
        if terms is None:
            return []
        period = period_at(terms, key.start_ms)
        if period is None or (period.start_ms, period.end_ms) != (key.start_ms, key.end_ms):
            return []  # the contract changed meanwhile; the new period is counted on its own
        return self._crossed(terms, period, total.micro, arrival_ms, opener)

    @staticmethod
    def _opener(key: PeriodKey, total: PeriodTotal) -> str:
        return total.opened_by or f"history:{key.start_ms}"

    def _crossed(
        self, terms: Terms, period: Period, used: int, arrival_ms: int, event_id: str
    ) -> list[Alert]:
        alerts = newly_crossed(terms, period, used, self.fired, arrival_ms, event_id)
        self._new_fired += [AlertKey(a.account_id, a.period.start_ms, a.threshold) for a in alerts]
        return alerts

    def take_changes(self) -> tuple[dict[PeriodKey, PeriodTotal], dict[AlertKey, int]]:
        """Totals changed and thresholds fired since the last call, for the state to persist."""
        totals = {key: self.totals[key] for key in self._changed if key in self.totals}
        fired = {key: self.fired[key] for key in self._new_fired if key in self.fired}
        self._changed = set()
        self._new_fired = []
        return totals, fired

    def restore(
        self,
        totals: Iterable[tuple[PeriodKey, PeriodTotal]],
        fired: Iterable[tuple[AlertKey, int]],
    ) -> None:
        """Load totals and fired thresholds read back from the store."""
        self.totals.update(totals)
        self.fired.update(fired)

    def expire(self, cutoff_ms: int) -> tuple[list[PeriodKey], list[AlertKey]]:
        """Forget periods that ended by ``cutoff_ms`` (no event can reach them); return them."""
        totals = [key for key in self.totals if key.end_ms <= cutoff_ms]
        for key in totals:
            del self.totals[key]
        fired = [key for key, end in self.fired.items() if end <= cutoff_ms]
        for alert in fired:
            del self.fired[alert]
        self._periods.clear()
        return totals, fired
