"""The counter names of ``cf:metrics``: what the worker adds is what ``/metrics`` exports."""

from __future__ import annotations

from core.events import Reason
from view import counters


def test_every_dead_letter_reason_has_a_counter() -> None:
    names = {counters.dlq(reason.value) for reason in Reason}
    assert all(counters.is_known(name) for name in names)
    assert len(names) == len(Reason)


def test_names_outside_the_list_are_unknown() -> None:
    assert counters.is_known(counters.events("accepted"))
    assert counters.is_known(counters.deliveries("expired"))
    assert not counters.is_known("events_accepted_total")
    assert not counters.is_known("deliveries:pending")
    assert not counters.is_known("view_rebuild")
    assert not counters.is_known(counters.dlq("no_such_reason"))
