"""The render benchmark times real answers of the phase's one-year query."""

from __future__ import annotations

import random

import orjson
import pytest

from bench import render
from bench.scale_build import History, day_templates
from core import usage
from core.days import DayUsage, iso_day


def test_render_benchmark_times_full_one_year_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    answers: list[bytes] = []
    real = usage.render_usage

    def recording(query: usage.UsageQuery, apps: dict[str, usage.AppDays]) -> bytes:
        body = real(query, apps)
        answers.append(body)
        return body

    monkeypatch.setattr(render, "render_usage", recording)
    result = render.measure(accounts=2, repeats=1)
    assert result["accounts"] == 2
    assert isinstance(result["ms_per_answer_fastest"], float)
    assert result["ms_per_answer_fastest"] > 0
    answer = orjson.loads(answers[0])
    assert answer["window"] == "day" and answer["group_by"] == "app"
    assert 364 <= len(answer["series"]) <= 366  # a year of local days (a DST day is still one)
    assert len(answer["series"][100]["apps"]) == 10  # 30% of 96 buckets: never an empty day


def test_the_bytes_the_benchmark_decodes_give_the_answer_of_the_whole_days() -> None:
    # The benchmark starts from what the view's read returns: built faithfully, decoding them
    # renders exactly what the whole days do.
    history = History(accounts=1)
    templates = day_templates(history, random.Random(3))
    days = {
        day: DayUsage(1, templates[day % len(templates)].slots)
        for day in range(history.last_day - 100, history.last_day)
    }
    for zone in ("Asia/Kathmandu", "Europe/London", "UTC"):
        first, last = (iso_day(history.last_day - n) for n in (80, 5))
        query = usage.parse_usage_query("acct", first, last, zone, "day", "app", "UTC")
        read = render._as_read(query, {"a": days, "b": dict(list(days.items())[::2])})
        whole = {"a": usage.AppDays.from_days(days)}
        whole["b"] = usage.AppDays.from_days(dict(list(days.items())[::2]))
        assert render.answer(query, read) == usage.render_usage(query, whole)
