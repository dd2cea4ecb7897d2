"""Allotment alerts: each (account, period, threshold) fires once, with a deterministic id."""

from __future__ import annotations

from datetime import date

from core.alerts import Alert, AlertKey, alert_id, newly_crossed
from core.billing import Explicit, Monthly, Period, Terms, period_at
from core.money import MICRO, micro_from_text
from tests.core.support import at, terms

SEOUL = terms(allotment="200000", period=Monthly(date(2026, 1, 1)), tz="Asia/Seoul", version=3)


def period_of(spec: Terms, instant_ms: int) -> Period:
    period = period_at(spec, instant_ms)
    assert period is not None
    return period


NOVEMBER = period_of(SEOUL, at(2026, 11, 15))


def fire(used: str, fired: dict[AlertKey, int]) -> list[int]:
    """Thresholds of SEOUL's November newly crossed when ``used`` credits are reached."""
    alerts = newly_crossed(SEOUL, NOVEMBER, micro_from_text(used), fired, at(2026, 11, 20), "e")
    return [alert.threshold for alert in alerts]


# ------------------------------------------------------------------ alert_id


def test_alert_id_format() -> None:
    assert alert_id("acme", NOVEMBER, 80) == "acme:2026-11-01:80"
    assert alert_id("globex.co_1-x", NOVEMBER, 100) == "globex.co_1-x:2026-11-01:100"


def test_alert_id_uses_the_local_start_date_of_the_period() -> None:
    # The Seoul period starts 2026-10-31T15:00Z, but its id carries the local date.
    assert NOVEMBER.start_ms == at(2026, 10, 31, 15)
    assert alert_id("acme", NOVEMBER, 50).split(":")[1] == "2026-11-01"
    explicit = terms(period=Explicit(date(2026, 10, 1), date(2027, 10, 1)), tz="Asia/Kolkata")
    period = period_of(explicit, at(2027, 1, 1))
    assert alert_id("initech", period, 100) == "initech:2026-10-01:100"


def test_alert_id_is_deterministic() -> None:
    again = period_of(SEOUL, at(2026, 11, 29, 23))
    assert again is not NOVEMBER
    assert alert_id("acme", again, 50) == alert_id("acme", NOVEMBER, 50)
    december = period_of(SEOUL, at(2026, 12, 15))
    ids = {
        alert_id("acme", NOVEMBER, 50),
        alert_id("acme", NOVEMBER, 80),
        alert_id("acme", december, 50),
        alert_id("globex", NOVEMBER, 50),
    }
    assert len(ids) == 4
    # Ids of two runs over fresh fired sets agree.
    first = newly_crossed(SEOUL, NOVEMBER, 200_000 * MICRO, {}, 1, "a")
    second = newly_crossed(SEOUL, again, 200_000 * MICRO, {}, 2, "b")
    assert [a.alert_id for a in first] == [a.alert_id for a in second]
    assert [a.alert_id for a in first] == [
        "acme:2026-11-01:50",
        "acme:2026-11-01:80",
        "acme:2026-11-01:100",
    ]


# ------------------------------------------------------------------ newly_crossed


def test_each_threshold_fires_once_and_is_marked_fired() -> None:
    fired: dict[AlertKey, int] = {}
    assert fire("99999.5", fired) == []
    assert fired == {}
    assert fire("100000", fired) == [50]
    assert fired == {("acme", NOVEMBER.start_ms, 50): NOVEMBER.end_ms}
    assert fire("100000", fired) == []
    assert fire("150000", fired) == []
    assert fire("160000", fired) == [80]
    assert fire("199999", fired) == []
    assert fire("200000", fired) == [100]
    assert fire("500000", fired) == []
    assert fired == {
        ("acme", NOVEMBER.start_ms, 50): NOVEMBER.end_ms,
        ("acme", NOVEMBER.start_ms, 80): NOVEMBER.end_ms,
        ("acme", NOVEMBER.start_ms, 100): NOVEMBER.end_ms,
    }


def test_several_thresholds_crossed_by_one_event_fire_together() -> None:
    fired: dict[AlertKey, int] = {}
    assert fire("10", fired) == []
    assert fire("170000", fired) == [50, 80]
    assert fire("250000", fired) == [100]
    everything: dict[AlertKey, int] = {}
    assert fire("200000", everything) == [50, 80, 100]


def test_fired_thresholds_of_another_period_or_account_do_not_count() -> None:
    december = period_of(SEOUL, at(2026, 12, 15))
    fired: dict[AlertKey, int] = {
        ("acme", december.start_ms, 50): december.end_ms,
        ("globex", NOVEMBER.start_ms, 50): NOVEMBER.end_ms,
    }
    assert fire("100000", fired) == [50]
    assert len(fired) == 3


def test_usage_falling_back_does_not_refire() -> None:
    fired: dict[AlertKey, int] = {}
    assert fire("100000", fired) == [50]
    assert fire("10", fired) == []
    assert fire("100000", fired) == []


def test_thresholds_above_one_hundred_and_a_zero_allotment() -> None:
    over = terms(allotment="100", thresholds=(100, 150))
    period = period_of(over, at(2026, 11, 1))
    fired: dict[AlertKey, int] = {}
    assert [a.threshold for a in newly_crossed(over, period, 149_999_999, fired, 0, "x")] == [100]
    assert [a.threshold for a in newly_crossed(over, period, 150 * MICRO, fired, 0, "x")] == [150]
    zero = terms(allotment="0")
    assert newly_crossed(zero, period, 0, {}, 0, "x") == []
    assert [a.threshold for a in newly_crossed(zero, period, 1, {}, 0, "x")] == [50, 80, 100]


def test_alert_fields() -> None:
    crossed_at = at(2026, 11, 20, 3, 4, 5) + 678
    (alert,) = newly_crossed(SEOUL, NOVEMBER, 100_000_500_000, {}, crossed_at, "evt-9")
    assert alert == Alert(
        alert_id="acme:2026-11-01:50",
        account_id="acme",
        threshold=50,
        period=NOVEMBER,
        allotment_micro=200_000 * MICRO,
        used_micro=100_000_500_000,
        crossed_at_ms=crossed_at,
        event_id="evt-9",
        contract_version=3,
    )


def test_to_wire() -> None:
    crossed_at = at(2026, 11, 20, 3, 4, 5) + 678
    (alert,) = newly_crossed(
        SEOUL,
        NOVEMBER,
        160_000_000_001,
        {
            (
                "acme",
                NOVEMBER.start_ms,
                50,
            ): NOVEMBER.end_ms
        },
        crossed_at,
        "evt-9",
    )
    assert alert.to_wire() == {
        "alert_id": "acme:2026-11-01:80",
        "type": "allotment.threshold_crossed",
        "account_id": "acme",
        "threshold_percent": 80,
        "period": {
            "start": "2026-11-01",
            "end": "2026-12-01",
            "start_at": "2026-10-31T15:00:00Z",
            "end_at": "2026-11-30T15:00:00Z",
        },
        "allotment": "200000",
        "used": "160000.000001",
        "crossed_at": "2026-11-20T03:04:05.678Z",
        "event_id": "evt-9",
        "contract_version": 3,
    }


def test_to_wire_money_fields_are_exact_decimal_strings() -> None:
    spec = terms(allotment="0.000003")
    period = period_of(spec, at(2026, 5, 1))
    (alert, *_) = newly_crossed(spec, period, 10**21 + 1, {}, at(2026, 5, 1), "e")
    wire = alert.to_wire()
    assert wire["allotment"] == "0.000003"
    assert wire["used"] == "1000000000000000.000001"
    assert isinstance(wire["threshold_percent"], int)
