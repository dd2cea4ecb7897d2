"""The render benchmark times real answers of the phase's one-year query."""

from __future__ import annotations

import orjson
import pytest

from bench import render
from core import usage


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
