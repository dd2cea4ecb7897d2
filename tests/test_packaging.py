"""What the installed package holds: no benchmark, no demo data, a current license field."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import cli.main as cli_main

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_bench_is_not_an_installed_package() -> None:
    included = PROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not [pattern for pattern in included if pattern.startswith("bench")]
    assert {"core*", "models*", "config*", "streams*", "view*", "api*", "cli*"} <= set(included)


def test_the_license_is_an_spdx_expression_not_a_table() -> None:
    assert PROJECT["project"]["license"] == "Apache-2.0"


def test_creditflow_bench_outside_a_checkout_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    installed = tmp_path / "site-packages" / "cli" / "main.py"
    monkeypatch.setattr(cli_main, "__file__", str(installed))
    assert cli_main.main(["bench", "--quick"]) == 2
    assert "runs from a source checkout" in capsys.readouterr().err
