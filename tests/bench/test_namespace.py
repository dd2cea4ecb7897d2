"""Benchmark namespaces keep their workers' local stores with the benchmark's artefacts."""

from __future__ import annotations

from pathlib import Path

from bench.namespace import STATE, Namespace


def test_workers_store_their_state_under_the_results_not_the_working_directory() -> None:
    first, second = Namespace("x"), Namespace("x")
    assert Path(first.env["CREDITFLOW_DATA_DIR"]).parent == STATE
    assert first.env["CREDITFLOW_DATA_DIR"] != second.env["CREDITFLOW_DATA_DIR"]
    assert first.settings().data_dir == STATE / first.tag


def test_a_namespace_may_choose_its_own_data_dir(tmp_path: Path) -> None:
    namespace = Namespace("x", extra={"CREDITFLOW_DATA_DIR": str(tmp_path)})
    assert namespace.settings().data_dir == tmp_path
