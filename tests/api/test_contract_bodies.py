"""Money in contract bodies is exact and bounded (finding 8 of issue 9), without a broker."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from api.bodies import parse_exact_json
from config.contracts import MAX_RATE, Contract, load_contracts, to_terms
from core.billing import bill

BODY = (
    b'{"plan": "custom", "allotment_credits": 100, "time_zone": "UTC", "currency": "USD",'
    b' "period": {"type": "monthly", "anchor": "2026-01-01"}, "payg_rate": %s}'
)


def _contract(rate: bytes) -> Contract:
    return Contract.model_validate(parse_exact_json(BODY % rate))


def test_finding_08_json_number_rate_is_exact() -> None:
    contract = _contract(b"0.0123456789012345678")
    assert contract.payg_rate == Decimal("0.0123456789012345678")
    assert contract.model_dump(mode="json")["payg_rate"] == "0.0123456789012345678"
    # 1,000 credits of overage at that rate: exact before rounding to cents
    assert bill(to_terms("acme", contract), 1100 * 10**6)["overage_amount"] == "12.35"


@pytest.mark.parametrize(
    "rate",
    [
        b"1e308",
        b"1E+999999",
        b'"1e999999"',
        b"1000000000.000001",
        b"1e-21",
        b'"0.%s1"' % (b"0" * 40),
    ],
)
def test_finding_08_huge_or_overprecise_rate_is_refused(rate: bytes) -> None:
    with pytest.raises(ValidationError, match="payg_rate") as info:
        _contract(rate)
    assert len(str(info.value)) < 1000, "the message must not echo the whole input"


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_finding_08_non_finite_json_is_not_json(constant: bytes) -> None:
    with pytest.raises(ValueError, match="not a JSON number"):
        parse_exact_json(BODY % constant)


def test_finding_08_huge_integer_and_deep_nesting_are_value_errors() -> None:
    with pytest.raises(ValueError):
        parse_exact_json(BODY % (b"9" * 5000))
    with pytest.raises(ValueError, match="nested"):
        parse_exact_json(b"[" * 100_000 + b"]" * 100_000)


def _yaml(tmp_path: Path, rate: str) -> Path:
    path = tmp_path / "contracts.yaml"
    path.write_text(
        "plans: {custom: {max_allotment_credits: '200000'}}\n"
        "accounts:\n  acme:\n    allotment_credits: '100'\n"
        "    period: {type: monthly, anchor: 2026-01-01}\n"
        f"    payg_rate: {rate}\n"
    )
    return path


@pytest.mark.parametrize("rate", ["1e999999", "'1e999999'", "1.0e+999999", ".inf", "1e308"])
def test_finding_08_yaml_rate_overflow_is_refused(tmp_path: Path, rate: str) -> None:
    with pytest.raises(ValidationError, match="payg_rate"):
        load_contracts(_yaml(tmp_path, rate))


def test_finding_08_yaml_float_rate_is_exact(tmp_path: Path) -> None:
    book = load_contracts(_yaml(tmp_path, "0.0123456789012345678"))
    assert book.accounts["acme"].payg_rate == Decimal("0.0123456789012345678")


def test_the_largest_rate_bills_without_error() -> None:
    fields: dict[str, Any] = {
        "allotment_credits": "0",
        "period": {"type": "monthly", "anchor": "2026-01-01"},
        "payg_rate": "999999999.99999999999999999999",
        "currency": "KWD",
    }
    terms = to_terms("acme", Contract.model_validate(fields))
    assert terms.rate < MAX_RATE
    answer = bill(terms, 10**30)  # 1e24 credits used, far beyond any real total
    assert answer["overage_amount"] == "999999999999999999999999999990000.000"
