"""The benchmark's report: failures become rows with reasons, ratios come from the same run."""

from __future__ import annotations

from typing import Any

import pytest

from bench import run as bench_run
from bench import throughput
from bench.namespace import Namespace


def _row(subject: str, rate: int, failed: str | None = None) -> dict[str, Any]:
    return throughput.Run(subject, rate, 1.0 if rate else 0.0, failed=failed).to_json()


def _results(**phases: Any) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "batch": [
            _row("raw aiokafka + parse", 1_000_000),
            _row("creditflow worker", 180_000),
            _row("quix streams (same sums)", 25_000),
            _row("faust no-op agent", 20_000),
        ],
        "single": [
            _row("raw aiokafka + parse", 500_000),
            _row("creditflow worker", 60_000),
            _row("quix streams (same sums)", 12_000),
            _row("faust no-op agent", 10_000),
        ],
        "latency": {
            "offered_events_per_second": 5000.0,
            "batch": 1,
            "freshness": {"p50_ms": 50.0, "p95_ms": 90.0, "p99_ms": 150.0},
            "alert_latency": {"p50_ms": 40.0, "p99_ms": 90.0},
        },
        "query": {"clients": 50, "p50_ms": 5.0, "p99_ms": 20.0},
    }
    figures.update(phases)
    return figures


def _verdict(
    results: dict[str, Any], metric: str, after: str = ""
) -> tuple[str, str, str, bool | None]:
    """The first verdict row named ``metric`` (after the row named ``after``, if given)."""
    rows = bench_run.verdicts(results)
    start = next(i for i, row in enumerate(rows) if row[0].startswith(after)) if after else 0
    return next(row for row in rows[start:] if row[0].startswith(metric))


def test_ratios_are_taken_against_baselines_of_the_same_run() -> None:
    results = _results()
    assert _verdict(results, "single-event records")[1:] == ("60,000", ">= 50,000", True)
    faust = _verdict(results, "  vs bare Faust")
    assert faust[1:] == ("6.00x", ">= 7.0x", False)  # 60k over 10k misses 7x
    assert _verdict(results, "  vs Quix Streams", after="single")[1:] == ("5.00x", ">= 2.0x", True)
    assert _verdict(results, "  vs Quix Streams")[1:] == ("7.20x", ">= 6.0x", True)
    assert _verdict(results, "batch records")[3] is True
    assert _verdict(results, "freshness")[0].endswith("single-event records")
    assert "MISSED" in bench_run.table(results)


def test_a_failed_phase_is_a_row_with_its_reason_not_a_traceback() -> None:
    results = _results(latency={"failed": "RuntimeError: the worker or API did not become ready"})
    assert _verdict(results, "freshness")[1:] == ("FAILED", "p99 <= 200", None)
    text = bench_run.table(results)
    assert "latency: RuntimeError: the worker or API did not become ready" in text
    assert _verdict(results, "batch records")[3] is True  # the other phases keep their figures


def test_a_failed_subject_leaves_its_ratios_without_a_figure() -> None:
    single = _results()["single"]
    single[2] = _row("quix streams (same sums)", 0, failed="RuntimeError: quix did not finish")
    results = _results(single=single)
    assert _verdict(results, "  vs Quix Streams", after="single")[1:] == ("n/a", ">= 2.0x", None)
    assert _verdict(results, "  vs bare Faust")[1] == "6.00x"
    assert "single / quix streams (same sums): RuntimeError: quix did not finish" in (
        bench_run.table(results)
    )


def test_a_subject_is_retried_on_fresh_groups_and_then_reported_failed() -> None:
    seen: list[tuple[int, str]] = []

    def flaky(namespace: Namespace) -> throughput.Run:
        seen.append((namespace.attempt, namespace.env["CREDITFLOW_GROUP_ID"]))
        if len(seen) == 1:
            raise RuntimeError("NotLeaderForPartitionError at topic creation")
        return throughput.Run("creditflow worker", 100, 1.0)

    namespace = Namespace("unit")
    run = throughput.attempt("creditflow worker", namespace, flaky)
    assert run.failed is None and run.attempts == 2
    assert seen[0][1] != seen[1][1]  # the retry consumes under a fresh group
    assert (
        namespace.retry().env["CREDITFLOW_CALLS_TOPIC"] == namespace.env["CREDITFLOW_CALLS_TOPIC"]
    )

    def broken(namespace: Namespace) -> throughput.Run:
        raise RuntimeError("worker exited with 70")

    failed = throughput.attempt("creditflow worker", namespace, broken)
    assert failed.failed == "RuntimeError: worker exited with 70"
    assert failed.to_json()["failed"] == failed.failed


@pytest.mark.parametrize("phase", ["batch", "single", "latency", "query"])
def test_a_phase_that_keeps_failing_is_recorded_and_the_run_goes_on(phase: str) -> None:
    results: dict[str, Any] = {}
    calls = []

    def failing() -> Any:
        calls.append(1)
        raise ValueError("broker hiccup")

    assert bench_run._phase(results, phase, failing) is False
    assert len(calls) == bench_run.PHASE_TRIES
    assert results[phase] == {"failed": "ValueError: broker hiccup"}
    assert len(results["load_average"][phase]) == 2
