"""Account contracts (plan, allotment, billing period, time zone, pay-as-you-go rate, alerts).

Loaded from ``config/contracts.yaml`` and validated here; the billing arithmetic lives in
:mod:`core.billing`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from core.billing import Explicit, Monthly, Terms
from core.events import ID_PATTERN
from core.localtime import FIRST_YEAR, LAST_YEAR, parse_tz
from core.money import CreditsError, micro_from_decimal

__all__ = (
    "CURRENCY_MINOR_UNITS",
    "MAX_RATE",
    "MAX_RATE_FRACTION_DIGITS",
    "Contract",
    "ContractBook",
    "ExplicitPeriod",
    "MonthlyPeriod",
    "Plan",
    "check_against_plans",
    "load_contracts",
    "to_terms",
)

# ISO 4217 minor units of the currencies creditflow bills in.
CURRENCY_MINOR_UNITS: dict[str, int] = {
    "USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KRW": 0, "CNY": 2, "INR": 2, "SGD": 2,
    "AUD": 2, "CAD": 2, "CHF": 2, "HKD": 2, "TWD": 2, "BHD": 3, "KWD": 3,
}  # fmt: skip

AccountId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]

# Bounds of a pay-as-you-go rate (price of one credit): far above any real price and any real
# precision, and small enough that overage arithmetic never leaves core.billing's precision.
MAX_RATE = Decimal(1_000_000_000)
MAX_RATE_FRACTION_DIGITS = 20


def _fraction_digits(value: Decimal) -> int:
    """Significant fractional digits of a finite Decimal, exactly (no context rounding)."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exponent + trailing_zeros)) if any(digits) else 0


class Plan(BaseModel):
    """A plan and the largest allotment a contract on it may have."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_allotment_credits: Decimal = Field(gt=0)
    upgrade_url: str = "mailto:sales@creditflow.dev"


def _supported(day: date) -> date:
    # Local calendars are exact only from 1980 (core.localtime); a period before that could
    # not be billed.
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ValueError(f"period dates must be in the years {FIRST_YEAR} to {LAST_YEAR}")
    return day


SupportedDate = Annotated[date, AfterValidator(_supported)]


class MonthlyPeriod(BaseModel):
    """Monthly periods starting on the anchor's day of month (clamped to short months)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["monthly"] = "monthly"
    anchor: SupportedDate


class ExplicitPeriod(BaseModel):
    """One explicit period ``[start, end)`` of local dates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["explicit"] = "explicit"
    start: SupportedDate
    end: SupportedDate

    @model_validator(mode="after")
    def _ordered(self) -> ExplicitPeriod:
        if self.start >= self.end:
            raise ValueError("period start must be before end")
        return self


class Contract(BaseModel):
    """What an account bought: an allotment per period, then pay-as-you-go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plan: str = "custom"
    allotment_credits: Decimal = Field(ge=0, description="Credits included per period.")
    period: Annotated[MonthlyPeriod | ExplicitPeriod, Field(discriminator="type")]
    time_zone: str = "UTC"
    payg_rate: Decimal = Field(gt=0, description="Price of one credit beyond the allotment.")
    currency: str = "USD"
    alert_thresholds: list[Annotated[int, Field(ge=1, le=1000)]] = Field(
        default_factory=lambda: [50, 80, 100]
    )
    hard_limit: StrictBool = Field(
        False,
        description="True: the access check denies once the allotment is used; "
        "false: usage past it is billed pay-as-you-go.",
    )
    version: int = Field(1, ge=1)

    @field_validator("allotment_credits")
    @classmethod
    def _exact_allotment(cls, value: Decimal) -> Decimal:
        try:
            micro_from_decimal(value)
        except CreditsError as error:
            raise ValueError(str(error).replace("credits", "allotment")) from None
        return value

    @field_validator("payg_rate")
    @classmethod
    def _bounded_rate(cls, value: Decimal) -> Decimal:
        # A rate such as 1e308 (or 1e999999 from YAML) would make every overage amount fail
        # to round, so /billing would answer 500: refuse it here, whatever the source.
        if value > MAX_RATE:
            raise ValueError(f"payg_rate must be at most {MAX_RATE}")
        if _fraction_digits(value) > MAX_RATE_FRACTION_DIGITS:
            raise ValueError(
                f"payg_rate has more than {MAX_RATE_FRACTION_DIGITS} fractional digits"
            )
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        parse_tz(value)
        return value

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in CURRENCY_MINOR_UNITS:
            raise ValueError(f"unknown currency {value!r}; known: {sorted(CURRENCY_MINOR_UNITS)}")
        return value

    @field_validator("alert_thresholds")
    @classmethod
    def _sorted_unique(cls, value: list[int]) -> list[int]:
        return sorted(set(value))


class ContractBook(BaseModel):
    """Plans and per-account contracts, as in ``config/contracts.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_time_zone: str = "UTC"
    plans: dict[str, Plan] = Field(default_factory=dict)
    accounts: dict[AccountId, Contract] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _within_plans(self) -> ContractBook:
        for account_id, contract in self.accounts.items():
            check_against_plans(account_id, contract, self.plans)
        return self

    def time_zone_of(self, account_id: str) -> str:
        """The account's contract zone, else the default."""
        contract = self.accounts.get(account_id)
        return contract.time_zone if contract else self.default_time_zone


def check_against_plans(account_id: str, contract: Contract, plans: dict[str, Plan]) -> None:
    """Raise ValueError when a contract names an unknown plan or exceeds the plan's maximum."""
    plan = plans.get(contract.plan)
    if plan is None:
        raise ValueError(f"{account_id}: unknown plan {contract.plan!r}")
    if contract.allotment_credits > plan.max_allotment_credits:
        raise ValueError(
            f"{account_id}: allotment {contract.allotment_credits} exceeds the "
            f"{contract.plan} plan's maximum of {plan.max_allotment_credits}"
        )


def to_terms(account_id: str, contract: Contract) -> Terms:
    """The core's view of a validated contract."""
    period: Monthly | Explicit
    if isinstance(contract.period, MonthlyPeriod):
        period = Monthly(contract.period.anchor)
    else:
        period = Explicit(contract.period.start, contract.period.end)
    return Terms(
        account_id=account_id,
        plan=contract.plan,
        allotment_micro=micro_from_decimal(contract.allotment_credits),
        period=period,
        tz=parse_tz(contract.time_zone),
        rate=contract.payg_rate,
        currency=contract.currency,
        minor_digits=CURRENCY_MINOR_UNITS[contract.currency],
        thresholds=tuple(contract.alert_thresholds),
        version=contract.version,
    )


class _ExactLoader(yaml.SafeLoader):
    """YAML with floats read as exact Decimals from their text (``0.1`` is not a binary 0.1)."""


def _exact_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | float:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        return Decimal(text)
    except ArithmeticError:  # .inf, .nan: left as floats for validation to refuse
        return loader.construct_yaml_float(node)


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _exact_float)


def load_contracts(path: Path) -> ContractBook:
    """Read and validate a contracts file; a missing file means no contracts."""
    if not path.exists():
        return ContractBook()
    data = yaml.load(path.read_text(), Loader=_ExactLoader) or {}  # noqa: S506 (a SafeLoader)
    return ContractBook.model_validate(data)
