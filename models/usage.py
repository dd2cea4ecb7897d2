"""The usage answer of the API and the day records of ``usage.buckets.v1``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ("AppUsage", "DayRecord", "SeriesPoint", "Totals", "UsageAnswer")

Credits = str


class Totals(BaseModel):
    """Calls and credits (an exact decimal string)."""

    model_config = ConfigDict(frozen=True)

    calls: int
    credits: Credits


class AppUsage(Totals):
    """Totals of one app."""

    app_id: str


class SeriesPoint(Totals):
    """One local hour, day or month of the range (clipped to the range at its ends)."""

    start: str
    end: str
    apps: list[AppUsage] | None = Field(description="Per-app totals; null when group_by=none.")


class UsageAnswer(BaseModel):
    """Usage of an account over ``[from, to)``, with how fresh the answer is."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    account_id: str
    from_: str = Field(alias="from")
    to: str
    tz: str
    window: Literal["none", "hour", "day", "month"]
    group_by: Literal["app", "none"]
    total: Totals
    apps: list[AppUsage] | None = Field(description="Per-app totals; null when group_by=none.")
    series: list[SeriesPoint]
    as_of: str | None = Field(
        description="Every event appended to usage.calls.v1 before this instant is counted."
    )
    lag: int = Field(description="Input records appended but not yet reflected in this answer.")


class DayRecord(BaseModel):
    """Absolute usage of one account's app on one UTC day; key ``account|app|YYYY-MM-DD``.

    Written by :func:`core.days.day_record` (the format's owner), one per changed day.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal[2] = Field(description="Record format; readers refuse any other.")
    account_id: str
    app_id: str
    day: str = Field(description="UTC day, YYYY-MM-DD.")
    version: int = Field(description="Input offset of the last change; larger is newer.")
    calls: int = Field(ge=0, description="Calls of the whole day.")
    credits: Credits = Field(description="Credits of the whole day.")
    slots: list[tuple[int, int, Credits]] = Field(
        description="Non-empty 15-minute buckets, ascending: [slot 0-95, calls, credits]."
    )
    source_partition: int
