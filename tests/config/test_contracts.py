"""Account contracts: the shipped default and the demo's file, validation messages, and the core's Terms."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

import config.contracts as contracts_module
from config.contracts import (
    CURRENCY_MINOR_UNITS,
    Contract,
    ContractBook,
    ExplicitPeriod,
    MonthlyPeriod,
    Plan,
    check_against_plans,
    load_contracts,
    to_terms,
)
from config.settings import Settings
from core.billing import Explicit, Monthly, Terms, bill

DEFAULT_FILE = Path(contracts_module.__file__).parent / "contracts.yaml"
DEMO_FILE = Path(__file__).resolve().parents[2] / "scripts" / "demo-contracts.yaml"
PLANS = {"custom": {"max_allotment_credits": "200000"}}


def contract(**fields: Any) -> dict[str, Any]:
    """A valid contract as it appears in contracts.yaml, with ``fields`` overridden."""
    base: dict[str, Any] = {
        "plan": "custom",
        "allotment_credits": "200000",
        "period": {"type": "monthly", "anchor": "2026-01-01"},
        "time_zone": "Asia/Seoul",
        "payg_rate": "0.012",
        "currency": "USD",
    }
    base.update(fields)
    return base


def book(**accounts: dict[str, Any]) -> ContractBook:
    return ContractBook.model_validate({"plans": PLANS, "accounts": accounts})


def rejection(data: dict[str, Any]) -> str:
    """The validation message of an invalid contract."""
    with pytest.raises(ValidationError) as info:
        Contract.model_validate(data)
    return str(info.value)


# ------------------------------------------------------------------ the shipped and demo files


def test_the_demo_contracts_file_loads_and_validates() -> None:
    loaded = load_contracts(DEMO_FILE)
    assert loaded.default_time_zone == "UTC"
    assert set(loaded.plans) == {"custom"}
    assert loaded.plans["custom"].max_allotment_credits == Decimal(200000)
    assert set(loaded.accounts) == {"acme", "globex", "initech"}
    acme = loaded.accounts["acme"]
    assert acme.allotment_credits == Decimal(200000)
    assert acme.period == MonthlyPeriod(anchor=date(2026, 1, 1))
    assert acme.time_zone == "Asia/Seoul"
    assert acme.payg_rate == Decimal("0.012")
    assert acme.alert_thresholds == [50, 80, 100]
    globex = loaded.accounts["globex"]
    assert globex.alert_thresholds == [50, 80, 100]  # the default
    assert globex.currency == "KRW"
    initech = loaded.accounts["initech"]
    assert initech.period == ExplicitPeriod(start=date(2026, 10, 1), end=date(2027, 10, 1))
    assert loaded.time_zone_of("globex") == "America/New_York"
    assert loaded.time_zone_of("nobody") == "UTC"
    for account_id, entry in loaded.accounts.items():
        assert to_terms(account_id, entry).account_id == account_id


def test_the_default_contracts_file_ships_no_accounts_or_plans() -> None:
    assert Settings.model_fields["contracts_file"].default.resolve() == DEFAULT_FILE.resolve()
    shipped = load_contracts(DEFAULT_FILE)
    assert (shipped.accounts, shipped.plans) == ({}, {})
    assert shipped.default_time_zone == "UTC"


def test_demo_amounts_are_exact_decimals_not_floats() -> None:
    loaded = load_contracts(DEMO_FILE)
    assert str(loaded.accounts["initech"].payg_rate) == "0.0095"
    assert to_terms("initech", loaded.accounts["initech"]).rate == Decimal("0.0095")


def test_a_missing_or_empty_file_means_no_contracts(tmp_path: Path) -> None:
    assert load_contracts(tmp_path / "absent.yaml").accounts == {}
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_contracts(empty).accounts == {}


def test_an_invalid_file_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "contracts.yaml"
    bad.write_text(
        DEMO_FILE.read_text().replace('allotment_credits: "50000"', 'allotment_credits: "250000"')
    )
    with pytest.raises(
        ValidationError,
        match="initech: allotment 250000 exceeds the custom plan's maximum of 200000",
    ):
        load_contracts(bad)


# ------------------------------------------------------------------ rejected contracts


def test_allotment_above_the_plan_maximum() -> None:
    with pytest.raises(
        ValidationError,
        match=r"acme: allotment 200000\.000001 exceeds the custom plan's maximum of 200000",
    ):
        book(acme=contract(allotment_credits="200000.000001"))
    assert book(acme=contract(allotment_credits="200000")).accounts["acme"]  # at the maximum
    entry = Contract.model_validate(contract(allotment_credits="300000"))
    with pytest.raises(ValueError, match="exceeds the custom plan's maximum"):
        check_against_plans("acme", entry, {"custom": Plan(max_allotment_credits=Decimal(200000))})


def test_unknown_plan() -> None:
    with pytest.raises(ValidationError, match="acme: unknown plan 'gold'"):
        book(acme=contract(plan="gold"))
    entry = Contract.model_validate(contract(plan="gold"))
    with pytest.raises(ValueError, match="unknown plan 'gold'"):
        check_against_plans("acme", entry, {})


@pytest.mark.parametrize("rate", ["0", "-0.01", "-1"])
def test_non_positive_rate(rate: str) -> None:
    message = rejection(contract(payg_rate=rate))
    assert "payg_rate" in message
    assert "greater than 0" in message


@pytest.mark.parametrize("rate", ["NaN", "Infinity"])
def test_non_finite_rate(rate: str) -> None:
    assert "finite" in rejection(contract(payg_rate=rate))


@pytest.mark.parametrize("currency", ["XYZ", "usd", ""])
def test_unknown_currency(currency: str) -> None:
    message = rejection(contract(currency=currency))
    assert f"unknown currency {currency!r}" in message
    assert "USD" in message  # the known ones are listed


@pytest.mark.parametrize("zone", ["Mars/Olympus", "America", "Asia/Seoul ", "../etc/passwd", ""])
def test_unknown_time_zone(zone: str) -> None:
    message = rejection(contract(time_zone=zone))
    assert "time_zone" in message
    assert f"unknown time zone {zone!r}" in message


@pytest.mark.parametrize(
    ("start", "end"), [("2026-02-01", "2026-02-01"), ("2026-03-01", "2026-02-01")]
)
def test_explicit_period_must_start_before_it_ends(start: str, end: str) -> None:
    message = rejection(contract(period={"type": "explicit", "start": start, "end": end}))
    assert "period start must be before end" in message


def test_unknown_period_type() -> None:
    assert "period" in rejection(contract(period={"type": "weekly", "anchor": "2026-01-01"}))


@pytest.mark.parametrize("allotment", ["1.0000001", "200000.1234567", "0.00000001"])
def test_allotment_with_more_than_six_fractional_digits(allotment: str) -> None:
    message = rejection(contract(allotment_credits=allotment))
    assert "allotment_credits" in message
    assert "more than 6 fractional digits" in message


def test_allotment_bounds() -> None:
    assert "greater than or equal to 0" in rejection(contract(allotment_credits="-1"))
    assert "allotment must be <= 1000000000" in rejection(contract(allotment_credits="1e10"))
    assert "finite" in rejection(contract(allotment_credits="NaN"))
    # Trailing zeros beyond six digits are exact, and zero is a valid (pure pay-as-you-go) allotment.
    assert Contract.model_validate(
        contract(allotment_credits="1.5000000")
    ).allotment_credits == Decimal("1.5")
    assert Contract.model_validate(contract(allotment_credits="0")).allotment_credits == 0


@pytest.mark.parametrize("thresholds", [[0], [1001], [-50]])
def test_thresholds_out_of_range(thresholds: list[int]) -> None:
    assert "alert_thresholds" in rejection(contract(alert_thresholds=thresholds))


def test_unknown_fields_are_rejected() -> None:
    assert "allotment" in rejection({**contract(), "allotment": "100"})


def test_invalid_account_id_in_a_book() -> None:
    with pytest.raises(ValidationError):
        ContractBook.model_validate({"plans": PLANS, "accounts": {"-acme": contract()}})


# ------------------------------------------------------------------ normalisation and to_terms


def test_thresholds_are_sorted_and_deduplicated() -> None:
    entry = Contract.model_validate(contract(alert_thresholds=[100, 50, 80, 50, 100, 120]))
    assert entry.alert_thresholds == [50, 80, 100, 120]
    assert to_terms("acme", entry).thresholds == (50, 80, 100, 120)
    assert Contract.model_validate(contract()).alert_thresholds == [50, 80, 100]


def test_to_terms_converts_exactly() -> None:
    entry = Contract.model_validate(
        contract(allotment_credits="123456.789012", payg_rate="0.0000001234567", version=4)
    )
    assert to_terms("acme", entry) == Terms(
        account_id="acme",
        plan="custom",
        allotment_micro=123_456_789_012,
        period=Monthly(date(2026, 1, 1)),
        tz=ZoneInfo("Asia/Seoul"),
        rate=Decimal("0.0000001234567"),
        currency="USD",
        minor_digits=2,
        thresholds=(50, 80, 100),
        version=4,
    )


@pytest.mark.parametrize(
    ("currency", "digits", "amount"),
    [
        ("USD", 2, "0.01"),
        ("KRW", 0, "0"),
        ("JPY", 0, "0"),
        ("BHD", 3, "0.005"),
        ("KWD", 3, "0.005"),
    ],
)
def test_to_terms_minor_digits(currency: str, digits: int, amount: str) -> None:
    spec = to_terms(
        "acme",
        Contract.model_validate(
            contract(currency=currency, payg_rate="0.005", allotment_credits="0")
        ),
    )
    assert spec.minor_digits == digits == CURRENCY_MINOR_UNITS[currency]
    assert bill(spec, 1_000_000)["overage_amount"] == amount  # 1 credit at 0.005


def test_to_terms_smallest_and_explicit() -> None:
    entry = Contract.model_validate(
        contract(
            allotment_credits="0.000001",
            period={"type": "explicit", "start": "2026-10-01", "end": "2027-10-01"},
            time_zone="Asia/Kolkata",
        )
    )
    spec = to_terms("initech", entry)
    assert spec.allotment_micro == 1
    assert spec.period == Explicit(date(2026, 10, 1), date(2027, 10, 1))
    assert spec.tz == ZoneInfo("Asia/Kolkata")
    largest = to_terms(
        "acme", Contract.model_validate(contract(allotment_credits="999999999.999999"))
    )
    assert largest.allotment_micro == 999_999_999_999_999


# ------------------------------------------------------------------ hard_limit


def test_hard_limit_defaults_to_pay_as_you_go() -> None:
    assert Contract.model_validate(contract()).hard_limit is False
    assert Contract.model_validate(contract(hard_limit=True)).hard_limit is True


@pytest.mark.parametrize("value", ["true", "yes", 1, None])
def test_hard_limit_must_be_a_boolean(value: Any) -> None:
    # A gate on access is never guessed from a string or a number.
    assert "hard_limit" in rejection(contract(hard_limit=value))
